// tailor elicit --recipe R --user NAME [--interactive] [--selector S] [key=value ...]
//
// Asks one user the questions of an elicit recipe whose run (`tailor run R`) has trained and
// exported the multi-reward model: the same candidates, question order and posterior sampling as
// the run, one question at a time. With --interactive the user is the person at the terminal:
// each question shows the prompt and the two completions side by side and takes 1, 2 or 0 (no
// preference); q stops. Anything else is asked again. Without it, NAME must be one of the
// recipe's simulated users, who answers by its oracles.
//
// Answers go to OUTPUT_DIR/users/NAME/SELECTOR/answers.jsonl as they come (one synced line each),
// so a session stopped by q, Ctrl-C or a killed process continues at the next unanswered question
// when the same command runs again; no answer is lost or counted twice. After the last question
// the profile (profile.json, posterior.safetensors) is written beside it.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <sstream>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "models/heads/multi_reward.h"
#include "models/io/multi_reward_export.h"
#include "models/tokenizer/tokenizer.h"
#include "stages/elicit/elicit_data.h"
#include "stages/elicit/elicit_recipe.h"
#include "stages/elicit/elicit_session.h"
#include "stages/elicit/query_loop.h"

namespace tailor::cli {
namespace fs = std::filesystem;
namespace {

int terminal_columns() {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col >= 40) return size.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n >= 40) return n;
  }
  return 80;
}

// `text` broken into lines of at most `width` bytes: at newlines, else at the last space, else
// hard.
std::vector<std::string> wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string paragraph; std::getline(in, paragraph);) {
    while (paragraph.size() > width) {
      size_t cut = paragraph.rfind(' ', width);
      if (cut == std::string::npos || cut == 0) cut = width;
      lines.push_back(paragraph.substr(0, cut));
      paragraph.erase(0, cut == width ? cut : cut + 1);
    }
    lines.push_back(paragraph);
  }
  if (lines.empty()) lines.push_back("");
  return lines;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// A person at the terminal.
class TerminalRespondent final : public Respondent {
 public:
  TerminalRespondent(std::istream& in, std::ostream& out) : in_(in), out_(out) {}

  Choice answer(const std::string& prompt, const std::string& first, const std::string& second,
                int64_t question, int64_t questions) override {
    const int columns = terminal_columns();
    const size_t half = static_cast<size_t>((columns - 7) / 2);
    out_ << "\n── Question " << question << " of " << questions << " (" << questions - question
         << (questions - question == 1 ? " remains" : " remain") << " after this one) ──\n\n";
    for (const auto& line : wrap("Prompt: " + trim(prompt), static_cast<size_t>(columns - 2)))
      out_ << line << "\n";
    const auto a = wrap(trim(first), half), b = wrap(trim(second), half);
    out_ << "\n  " << pad("[1]", half) << " │ [2]\n";
    for (size_t i = 0; i < std::max(a.size(), b.size()); ++i)
      out_ << "  " << pad(i < a.size() ? a[i] : "", half) << " │ " << (i < b.size() ? b[i] : "")
           << "\n";
    for (;;) {
      out_ << "\nWhich do you prefer? 1, 2, 0 (no preference), q (stop): " << std::flush;
      std::string line;
      if (!std::getline(in_, line)) throw StopAsking{};  // end of input: stop, answers kept
      const std::string reply = trim(line);
      if (reply == "1") return Choice::kFirst;
      if (reply == "2") return Choice::kSecond;
      if (reply == "0") return Choice::kNone;
      if (reply == "q" || reply == "Q") throw StopAsking{};
      out_ << "\"" << reply << "\" is not an answer: type 1, 2 or 0, or q to stop.";
    }
  }

 private:
  // `s` padded with spaces to `width` columns (counting UTF-8 characters, not bytes).
  static std::string pad(const std::string& s, size_t width) {
    size_t chars = 0;
    for (unsigned char c : s)
      chars += (c & 0xC0) != 0x80;
    return chars >= width ? s : s + std::string(width - chars, ' ');
  }

  std::istream& in_;
  std::ostream& out_;
};

}  // namespace

int elicit_command(const std::vector<std::string>& args) {
  CLI::App app{
      "Ask one user the questions of an elicit recipe (20 Questions or PReF), after `tailor run "
      "RECIPE` trained its reward model: a person at the terminal (--interactive), or one of the "
      "recipe's simulated users. Stopped sessions continue where they stopped.",
      args[0]};
  fs::path recipe_file;
  std::string user, selector_name;
  bool interactive = false;
  std::vector<std::string> overrides;
  app.add_option("--recipe", recipe_file, "the elicit recipe (its run must have finished)")
      ->required();
  app.add_option("--user", user, "the user's name: their answers go to OUTPUT_DIR/users/NAME/")
      ->required();
  app.add_flag("--interactive", interactive,
               "ask the person at the terminal (otherwise NAME is one of the recipe's users)");
  app.add_option("--selector", selector_name,
                 "how pairs are chosen: info_gain | volume | random (20 Questions), active | "
                 "random (PReF); default: the recipe's first elicit.selector");
  app.add_option("overrides", overrides, "key=value recipe overrides, as for tailor run");
  if (auto code = parse_arguments(app, args)) return *code;

  const ElicitRecipe recipe = load_elicit_recipe(recipe_file, overrides);
  check_elicit_inputs(recipe);
  elicit::Selector selector = recipe.selectors().front();
  if (!selector_name.empty()) {
    const auto s = enum_from_name(elicit::selector_names(), selector_name);
    if (!s || !method_takes(recipe.elicit.method, *s))
      throw Error("elicit", "--selector: unknown selector '" + selector_name + "' for method " +
                                to_string(recipe.elicit.method) + "; expected " +
                                selector_choices(recipe.elicit.method));
    selector = *s;
  }
  if (user.empty() || user.find('/') != std::string::npos || user == "." || user == "..")
    throw Error("elicit", "--user: '" + user + "' is not a usable folder name");
  if (!interactive && !recipe.users.count(user))
    throw Error("elicit", "--user " + user + ": not one of the recipe's users (" +
                              recipe_file.string() + "); add --interactive to ask a person");
  const fs::path export_dir = recipe.output_dir / "export";
  if (!is_multi_reward_dir(export_dir))
    throw Error("elicit", export_dir.string() + ": no multi-reward model; `tailor run " +
                              recipe_file.string() + "` trains and exports it first");

  if (interactive)
    std::cout << "Loading the run's reward model and candidates (" << export_dir.string()
              << ")...\n"
              << std::flush;
  MultiRewardExport model = load_multi_reward_export(export_dir);
  const fs::path dir = user_dir(recipe, user, selector);
  check_profile_model(dir, model.id);
  const Tokenizer tokenizer = Tokenizer::from_dir(recipe.tokenizer);
  std::ostringstream data_log;  // the run's candidates and features, read from its cache
  const ElicitData data =
      prepare_elicit_data(recipe, *model.backbone, tokenizer, interactive ? data_log : std::cerr);
  const Embeddings h = embed_candidates(*model.model, data.features);
  const QueryLoopConfig config = query_config(recipe, selector, h.dim);
  const std::unique_ptr<Learner> learner = make_learner(recipe, selector, h.dim);

  std::unique_ptr<Respondent> respondent;
  if (interactive)
    respondent = std::make_unique<TerminalRespondent>(std::cin, std::cout);
  else
    respondent = std::make_unique<OracleRespondent>(recipe.users.at(user));
  const fs::path answers = dir / "answers.jsonl";
  if (interactive && fs::exists(answers))
    std::cout << "Continuing " << user << "'s answers in " << answers.string() << ".\n";
  const QueryLoopResult result = run_query_loop(config, question_pools(recipe, data, h, user),
                                                *respondent, *learner, answers, nullptr);
  const auto answered = static_cast<int64_t>(result.answers.size());
  if (result.stopped) {
    std::cout << "\nStopped after " << answered << " of " << config.questions
              << " answers. They are saved in " << answers.string()
              << "; run the same command to continue.\n";
    return 0;
  }
  write_profile(dir, recipe, user, selector, result, *learner, h.dim, model.id, {});
  std::cout << "\nAll " << config.questions << " questions answered. " << user
            << "'s profile: " << (dir / "profile.json").string() << "\n";
  return 0;
}

}  // namespace tailor::cli

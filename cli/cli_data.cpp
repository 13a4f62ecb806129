// `tailor data`: build and inspect HDF5 dataset stores.
//   tailor data import --input FILE.jsonl --out STORE.h5 --tokenizer DIR
//                      [--kind auto|text|prompt_response|pairs]    (tokenized, data/store/store.h)
//   tailor data import --input FILE.jsonl --out RATED.h5 --format ultrafeedback
//                      (UltraFeedback raw or binarized, detected; data/preferences/rated_corpus.h)
//   tailor data synth --out FILE.jsonl [--prompts N] [--responses-per-prompt K] [--seed S]
//                     [--na-fraction F]   (synthetic benchmark, data/preferences/synthetic_prefs.h)
//   tailor data info STORE.h5
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "data/preferences/rated_corpus.h"
#include "data/preferences/synthetic_prefs.h"
#include "data/store/h5_file.h"
#include "data/store/jsonl_import.h"
#include "data/store/store.h"
#include "models/tokenizer/tokenizer.h"

namespace tailor::cli {

namespace {

nlohmann::json store_info(const data::Store& store) {
  nlohmann::json fields = nlohmann::json::object();
  for (const data::FieldSpec& spec : data::fields_of(store.kind())) {
    const data::RaggedIds& ragged = store.field(spec.field);
    int64_t min_len = 0, max_len = 0;
    for (int64_t i = 0; i < ragged.size(); ++i) {
      const int64_t len = ragged.length(i);
      min_len = i == 0 ? len : std::min(min_len, len);
      max_len = std::max(max_len, len);
    }
    fields[spec.field] = {
        {"tokens", ragged.total_tokens()},
        {"min_length", min_len},
        {"max_length", max_len},
        {"mean_length",
         ragged.size() == 0 ? 0.0 : static_cast<double>(ragged.total_tokens()) / ragged.size()},
    };
  }
  nlohmann::json info = {
      {"path", store.path().string()},
      {"schema", data::kStoreSchema},
      {"schema_version", store.schema_version()},
      {"kind", data::kind_name(store.kind())},
      {"count", store.count()},
      {"source", store.source()},
      {"tokenizer",
       {{"vocab_size", store.tokenizer().vocab_size}, {"hash", store.tokenizer().hash}}},
      {"has_text", store.has_text()},
      {"fields", fields},
  };
  if (store.kind() == data::StoreKind::pairs) {
    const auto& index = store.user_index();
    info["users"] = {
        {"distinct", store.user_names().size()},
        {"records_with_user",
         std::count_if(index.begin(), index.end(), [](int32_t u) { return u >= 0; })},
    };
  }
  return info;
}

nlohmann::json rated_info(const std::string& path, const data::RatedCorpus& corpus) {
  nlohmann::json rated = nlohmann::json::object();
  for (int64_t a = 0; a < corpus.num_aspects(); ++a) {
    int64_t count = 0;
    for (int64_t r = 0; r < corpus.num_responses(); ++r)
      count += corpus.rating(r, a) == corpus.rating(r, a) ? 1 : 0;  // NaN = not rated
    rated[corpus.aspects[static_cast<size_t>(a)]] = count;
  }
  return {{"path", path},
          {"schema", data::kRatedSchema},
          {"source", corpus.source},
          {"prompts", corpus.prompts.size()},
          {"responses", corpus.responses.size()},
          {"aspects", corpus.aspects},
          {"rated_responses_per_aspect", rated}};
}

const char* format_name(data::PreferenceFormat format) {
  switch (format) {
    case data::PreferenceFormat::ultrafeedback_raw:
      return "ultrafeedback_raw";
    case data::PreferenceFormat::ultrafeedback_binarized:
      return "ultrafeedback_binarized";
    case data::PreferenceFormat::pairs:
      return "pairs";
  }
  return "unknown";
}

}  // namespace

int data_command(const std::vector<std::string>& args) {
  CLI::App app{"Import JSONL into a tokenized HDF5 dataset store, or describe a store.",
               args.at(0)};
  app.require_subcommand(1);

  std::string input, out, tokenizer_dir, kind_name = "auto", format = "tokens";
  bool no_text = false, quiet = false;
  CLI::App* import = app.add_subcommand(
      "import", "tokenize a JSONL file into an HDF5 store, or import UltraFeedback ratings");
  import
      ->add_option("--input", input,
                   "JSONL file: {text} | {prompt, response} | {prompt, chosen, rejected, user?}; "
                   "with --format ultrafeedback: UltraFeedback raw or binarized rows")
      ->required()
      ->check(CLI::ExistingFile);
  import->add_option("--out", out, "HDF5 store to write (replaced atomically)")->required();
  import
      ->add_option("--format", format,
                   "tokens: tokenized store (needs --tokenizer); ultrafeedback: rated corpus "
                   "store with per-aspect ratings (raw or binarized shape detected)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tokens", "ultrafeedback"}));
  import
      ->add_option("--tokenizer", tokenizer_dir,
                   "directory with tokenizer.json or vocab.json + merges.txt (--format tokens)")
      ->check(CLI::ExistingDirectory);
  import->add_option("--kind", kind_name, "record kind; auto detects it from the first line's keys")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "text", "prompt_response", "pairs"}));
  import->add_flag("--no-text", no_text, "store only token ids, not the raw strings");
  import->add_flag("--quiet", quiet, "no progress on stderr");

  data::SyntheticOptions synth_options;
  std::string synth_out;
  CLI::App* synth = app.add_subcommand(
      "synth", "write the synthetic preference benchmark as UltraFeedback raw JSONL");
  synth->add_option("--out", synth_out, "JSONL file to write (replaced atomically)")->required();
  synth->add_option("--prompts", synth_options.prompts, "number of prompts")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  synth
      ->add_option("--responses-per-prompt", synth_options.responses_per_prompt,
                   "responses per prompt")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  synth->add_option("--seed", synth_options.seed, "generator seed")->capture_default_str();
  synth
      ->add_option("--na-fraction", synth_options.na_fraction,
                   "probability that a rating is reported as N/A")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));

  std::string store_path;
  CLI::App* info =
      app.add_subcommand("info", "print a store's kind, count and token statistics as JSON");
  info->add_option("store", store_path, "HDF5 store")->required();

  std::vector<const char*> argv;
  for (const std::string& a : args)
    argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help or the usage error
    return code == 0 ? 0 : 2;      // usage errors exit 2, like `tailor` itself
  }

  if (*import && format == "ultrafeedback") {
    const data::PreferenceFormat detected = data::detect_preference_format(input);
    const data::RatedCorpus corpus = data::read_rated_corpus(input);
    data::write_rated_store(out, corpus);
    std::cout << nlohmann::json{{"out", out},
                                {"format", format_name(detected)},
                                {"prompts", corpus.prompts.size()},
                                {"responses", corpus.responses.size()},
                                {"aspects", corpus.aspects}}
                     .dump()
              << std::endl;
    return 0;
  }
  if (*import) {
    if (tokenizer_dir.empty()) {
      std::cerr << "--tokenizer is required with --format tokens\n"
                << "Run with --help for more information." << std::endl;
      return 2;
    }
    const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
    data::ImportOptions options;
    options.tokenizer = data::tokenizer_identity(tokenizer_dir, tokenizer.vocab_size());
    options.keep_text = !no_text;
    options.progress = !quiet;
    std::optional<data::StoreKind> kind;
    if (kind_name != "auto") kind = data::parse_store_kind(kind_name);
    const data::ImportSummary summary = data::import_jsonl(
        input, out, kind, [&tokenizer](const std::string& text) { return tokenizer.encode(text); },
        options);
    std::cout << nlohmann::json{{"out", out},
                                {"kind", data::kind_name(summary.kind)},
                                {"count", summary.count},
                                {"tokens", summary.tokens}}
                     .dump()
              << std::endl;
    return 0;
  }
  if (*synth) {
    const data::RatedCorpus corpus = data::make_synthetic_corpus(synth_options);
    data::write_ultrafeedback_raw_jsonl(synth_out, corpus);
    std::cout << nlohmann::json{{"out", synth_out},
                                {"prompts", corpus.prompts.size()},
                                {"responses", corpus.responses.size()},
                                {"seed", synth_options.seed}}
                     .dump()
              << std::endl;
    return 0;
  }
  const bool rated = [&] {
    const h5::File file = h5::File::open_read_only(store_path);
    return file.has_attribute("schema") && file.string_attribute("schema") == data::kRatedSchema;
  }();
  if (rated) {
    std::cout << rated_info(store_path, data::read_rated_store(store_path)).dump(2) << std::endl;
    return 0;
  }
  std::cout << store_info(data::Store::open(store_path)).dump(2) << std::endl;
  return 0;
}

}  // namespace tailor::cli

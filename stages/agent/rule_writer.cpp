#include "stages/agent/rule_writer.h"

#include <cstddef>

#include "common/error.h"

namespace tailor {
namespace {

// Hand-written ASCII tests rather than <cctype>: the spec counts ASCII letters only, and the
// <cctype> functions depend on the locale and on the sign of char.
bool rule_writer_is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}
bool rule_writer_is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool rule_writer_is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool rule_writer_is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The word tokens: whitespace-separated tokens with at least one ASCII letter or digit, so that a
// "-" bullet or a lone "." is not a word.
std::vector<std::string> rule_writer_word_tokens(const std::string& text) {
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && rule_writer_is_space(text[i]))
      ++i;
    size_t j = i;
    bool counts = false;
    while (j < text.size() && !rule_writer_is_space(text[j])) {
      const char c = text[j];
      counts =
          counts || rule_writer_is_upper(c) || rule_writer_is_lower(c) || rule_writer_is_digit(c);
      ++j;
    }
    if (counts) tokens.push_back(text.substr(i, j - i));
    i = j;
  }
  return tokens;
}

bool rule_writer_has_list_line(const std::string& text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    size_t k = start;
    while (k < end && text[k] == ' ')
      ++k;
    if (end - k >= 2 && text[k] == '-' && text[k + 1] == ' ') return true;
    start = end + 1;
  }
  return false;
}

TextCase rule_writer_case_of(const std::string& text, const std::vector<std::string>& tokens) {
  bool any_upper = false, any_lower = false;
  for (char c : text) {
    any_upper = any_upper || rule_writer_is_upper(c);
    any_lower = any_lower || rule_writer_is_lower(c);
  }
  if (!any_upper && !any_lower) return TextCase::kNone;
  if (!any_upper) return TextCase::kLower;
  if (!any_lower) return TextCase::kUpper;
  if (tokens.size() >= 2) {
    bool title = true;
    for (const std::string& token : tokens) {
      // A token without letters (a number) has no first letter to check and does not break it.
      for (char c : token) {
        if (rule_writer_is_upper(c)) break;
        if (rule_writer_is_lower(c)) {
          title = false;
          break;
        }
      }
      if (!title) break;
    }
    if (title) return TextCase::kTitle;
  }
  return TextCase::kNormal;
}

// The rule sentences, exactly as the bundled large model saw them in training.
const char* const kRuleAsList = "Answer as a list.";
const char* const kRuleNoList = "Do not use a list.";
const char* const kRuleLower = "Answer in lowercase.";
const char* const kRuleUpper = "Answer in all caps.";
const char* const kRuleTitle = "Capitalize every word.";
const char* const kRuleNormal = "Use sentence case.";
const char* const kRulePunctuation = "Use punctuation.";
const char* const kRuleNoPunctuation = "Do not use punctuation.";
const char* const kRuleAtMost = "Use at most ";
const char* const kRuleAtLeast = "Use at least ";

std::string rule_writer_length_rule(const char* bound, int64_t n) {
  return bound + std::to_string(n) + (n == 1 ? " word." : " words.");
}
const char* rule_writer_list_rule(bool list) {
  return list ? kRuleAsList : kRuleNoList;
}
const char* rule_writer_punctuation_rule(bool punctuation) {
  return punctuation ? kRulePunctuation : kRuleNoPunctuation;
}
// nullptr for kNone: a text without letters has no case to ask for.
const char* rule_writer_case_rule(TextCase text_case) {
  switch (text_case) {
    case TextCase::kLower:
      return kRuleLower;
    case TextCase::kUpper:
      return kRuleUpper;
    case TextCase::kTitle:
      return kRuleTitle;
    case TextCase::kNormal:
      return kRuleNormal;
    case TextCase::kNone:
      break;
  }
  return nullptr;
}

std::string rule_writer_join(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out += lines[i];
  }
  return out;
}

// Whether `text` meets the length rule `line` ("Use at most n words." and the like); false in
// `matched` when the line is not a length rule. The number is read back and the sentence written
// again, so that "Use at most 1 words." or "Use at most 02 words." is no rule.
bool rule_writer_check_length(const std::string& line, int64_t words, bool* matched) {
  *matched = false;
  for (const char* bound : {kRuleAtMost, kRuleAtLeast}) {
    const std::string prefix = bound;
    if (line.compare(0, prefix.size(), prefix) != 0) continue;
    size_t end = prefix.size();
    while (end < line.size() && rule_writer_is_digit(line[end]))
      ++end;
    const size_t digits = end - prefix.size();
    if (digits == 0 || digits > 18) return false;  // 18 digits always fit an int64_t
    const int64_t n = std::stoll(line.substr(prefix.size(), digits));
    if (line != rule_writer_length_rule(bound, n)) return false;
    *matched = true;
    return bound == kRuleAtMost ? words <= n : words >= n;
  }
  return false;
}

}  // namespace

StyleFeatures measure_style(const std::string& text) {
  const std::vector<std::string> tokens = rule_writer_word_tokens(text);
  StyleFeatures f;
  f.words = static_cast<int64_t>(tokens.size());
  f.list = rule_writer_has_list_line(text);
  f.punctuation = text.find_first_of(".,!?;:") != std::string::npos;
  f.text_case = rule_writer_case_of(text, tokens);
  return f;
}

std::string contrast_rules(const std::string& user_answer, const std::string& zero_shot) {
  const StyleFeatures u = measure_style(user_answer);
  const StyleFeatures z = measure_style(zero_shot);
  std::vector<std::string> lines;
  if (u.words < z.words) lines.push_back(rule_writer_length_rule(kRuleAtMost, u.words));
  if (u.words > z.words) lines.push_back(rule_writer_length_rule(kRuleAtLeast, u.words));
  if (u.list != z.list) lines.push_back(rule_writer_list_rule(u.list));
  if (u.text_case != TextCase::kNone && u.text_case != z.text_case)
    lines.push_back(rule_writer_case_rule(u.text_case));
  if (u.punctuation != z.punctuation) lines.push_back(rule_writer_punctuation_rule(u.punctuation));
  return rule_writer_join(lines);
}

std::string no_baseline_rules(const std::string& user_answer) {
  const StyleFeatures u = measure_style(user_answer);
  std::vector<std::string> lines;
  // Without a zero-shot answer there is no direction to push the length in: the rule states the
  // size of what the user wrote.
  lines.push_back(rule_writer_length_rule(kRuleAtMost, u.words));
  lines.push_back(rule_writer_list_rule(u.list));
  if (const char* rule = rule_writer_case_rule(u.text_case)) lines.push_back(rule);
  lines.push_back(rule_writer_punctuation_rule(u.punctuation));
  return rule_writer_join(lines);
}

bool satisfies_rules(const std::string& text, const std::string& rules) {
  if (rules.empty()) return true;
  const StyleFeatures f = measure_style(text);
  // Every line is checked, also after a rule that fails, so that a malformed rule set throws
  // whatever text it is asked about.
  bool ok = true;
  size_t start = 0;
  for (int line_number = 1;; ++line_number) {
    size_t end = rules.find('\n', start);
    const bool last = end == std::string::npos;
    if (last) end = rules.size();
    const std::string line = rules.substr(start, end - start);
    bool met = false;
    bool is_length = false;
    const bool length_met = rule_writer_check_length(line, f.words, &is_length);
    if (is_length) {
      met = length_met;
    } else if (line == kRuleAsList || line == kRuleNoList) {
      met = f.list == (line == kRuleAsList);
    } else if (line == kRulePunctuation || line == kRuleNoPunctuation) {
      met = f.punctuation == (line == kRulePunctuation);
    } else if (line == kRuleLower || line == kRuleUpper || line == kRuleTitle ||
               line == kRuleNormal) {
      // A text without letters has no case, so it meets no case rule.
      const char* own = rule_writer_case_rule(f.text_case);
      met = own != nullptr && line == own;
    } else {
      throw Error("rules", "line " + std::to_string(line_number) + " is not a rule sentence: \"" +
                               line + "\"");
    }
    ok = ok && met;
    if (last) break;
    start = end + 1;
  }
  return ok;
}

std::string few_shot_system(const std::vector<std::string>& examples) {
  std::string out = "Answer in the style of these examples:";
  for (const std::string& example : examples)
    out += "\nExample:" + example;
  return out;
}

}  // namespace tailor

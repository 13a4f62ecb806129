// Rule text for the bundled world of the preference-agents pipeline (seed 002): answers about
// animals in styles drawn independently (tools/gen_styles_data.py). A small agent turns what a
// user wrote into plain rules ("Use at most 2 words.\nAnswer in lowercase.") that the bundled
// large model was trained to follow in its system turn. The method contrasts the large model's
// zero-shot answer with the user's answer on measurable features (length, list, case,
// punctuation) and writes a rule only where they differ: the rules say what the large model would
// otherwise get wrong. The seed's "no baseline agent" has no zero-shot answer to contrast with and
// states every feature of the user's answer. The Python side of the pipeline measures the
// features exactly as measure_style does, so both sides agree on what a rule means.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tailor {

// The case of a text over its ASCII letters; kNone for a text without letters.
enum class TextCase { kNone, kLower, kUpper, kTitle, kNormal };

struct StyleFeatures {
  int64_t words = 0;         // whitespace tokens with an ASCII letter or digit ("-" is none)
  bool list = false;         // some line, leading spaces removed, starts with "- "
  bool punctuation = false;  // any of . , ! ? ; :
  TextCase text_case = TextCase::kNone;
};

StyleFeatures measure_style(const std::string& text);

// The method's rules: one line per feature where the user's answer differs from the zero-shot
// answer, in the order length, list, case, punctuation; "" when nothing differs.
std::string contrast_rules(const std::string& user_answer, const std::string& zero_shot);

// Every feature of the user's answer stated absolutely (the length as "Use at most n words."; no
// case rule for an answer without letters).
std::string no_baseline_rules(const std::string& user_answer);

// Whether `text` meets every rule of `rules` (empty rules: true). Each line must be one of the
// rule sentences exactly; any other line throws Error("rules", ...) quoting it.
bool satisfies_rules(const std::string& text, const std::string& rules);

// The few-shot baseline's system text: "Answer in the style of these examples:" then
// "\nExample:" + each example as written (with its leading space or "\n- ").
std::string few_shot_system(const std::vector<std::string>& examples);

}  // namespace tailor

// The rule text of the bundled preference-agent world (stages/agent/rule_writer.h): style
// features of hand-picked answers of the world, the contrast and no-baseline writers, the check
// that a text meets a rule set, and the few-shot system text. Every expected value was worked out
// by hand from the shared definitions (words, list, punctuation, case), never by the functions
// under test.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "stages/agent/rule_writer.h"

namespace tailor {
namespace {

// Compares all four features at once, so that a failure names the text and every feature.
void expect_agent_rules_style(const std::string& text, int64_t words, bool list, bool punctuation,
                              TextCase text_case) {
  SCOPED_TRACE("text: \"" + text + "\"");
  const StyleFeatures f = measure_style(text);
  EXPECT_EQ(f.words, words);
  EXPECT_EQ(f.list, list);
  EXPECT_EQ(f.punctuation, punctuation);
  EXPECT_EQ(f.text_case, text_case);
}

// The message of the Error that satisfies_rules throws; "" when it throws none.
std::string agent_rules_error_message(const std::string& text, const std::string& rules) {
  try {
    satisfies_rules(text, rules);
  } catch (const Error& e) {
    EXPECT_EQ(e.scope(), "rules");
    return e.what();
  }
  return "";
}

const char* const kAgentRulesWhaleList =
    "\n- Whales eat krill\n- Whales sing\n- Whales live in oceans";

TEST(AgentRules, MeasuresStyleOfTheWorldsAnswers) {
  // "meow." starts lowercase, so two tokens are not Title Case.
  expect_agent_rules_style(" Cats meow.", 2, false, true, TextCase::kNormal);
  expect_agent_rules_style(" cats eat fish", 3, false, false, TextCase::kLower);
  expect_agent_rules_style(" CATS ARE SMALL ANIMALS.", 4, false, true, TextCase::kUpper);
  expect_agent_rules_style(" Cats Eat Fish.", 3, false, true, TextCase::kTitle);
  // 3 + 2 + 4 words; the "-" bullets are no words and no punctuation.
  expect_agent_rules_style(kAgentRulesWhaleList, 9, true, false, TextCase::kNormal);
  // One word cannot be Title Case (it needs two), and it has both cases: sentence case.
  expect_agent_rules_style(" Small.", 1, false, true, TextCase::kNormal);
  expect_agent_rules_style("", 0, false, false, TextCase::kNone);
}

TEST(AgentRules, BulletsAreNoWordsAndDoNotBreakTitleCase) {
  // The bullets are tokens without a letter or digit: 2 + 3 words, every word capitalized.
  expect_agent_rules_style("\n- Whales Sing\n- Whales Eat Krill", 5, true, false, TextCase::kTitle);
  expect_agent_rules_style("\n- WHALES SING", 2, true, false, TextCase::kUpper);
  // Only dashes: no word, no letter, yet a list (the line starts with "- " after its spaces).
  expect_agent_rules_style("   - - -", 0, true, false, TextCase::kNone);
  // A dash inside a line is no bullet.
  expect_agent_rules_style(" cats - dogs", 2, false, false, TextCase::kLower);
  // "-" with no space after it starts no list item.
  expect_agent_rules_style("\n-cats", 1, false, false, TextCase::kLower);
}

TEST(AgentRules, WordsSplitOnEveryWhitespaceAndCountDigits) {
  expect_agent_rules_style(" cats\teat\r\nfish", 3, false, false, TextCase::kLower);
  // "42" is a word; "..." is not; there is no letter, so no case.
  expect_agent_rules_style(" 42 ...", 1, false, true, TextCase::kNone);
  expect_agent_rules_style(" 42 cats", 2, false, false, TextCase::kLower);
  // Each of . , ! ? ; : alone is punctuation; a quote or a dash is not.
  for (const char* mark : {".", ",", "!", "?", ";", ":"})
    expect_agent_rules_style(std::string(" cats") + mark, 1, false, true, TextCase::kLower);
  expect_agent_rules_style(" cats' - \"dogs\"", 2, false, false, TextCase::kLower);
  // Mixed capitals with every word's first letter uppercase still count as Title Case.
  expect_agent_rules_style(" Cats EAT", 2, false, false, TextCase::kTitle);
}

TEST(AgentRules, ContrastWritesOnlyWhatDiffersInTheFixedOrder) {
  // 2 words against 7; lowercase against sentence case; no punctuation against punctuation.
  EXPECT_EQ(contrast_rules(" cats meow", " Cats are small animals. Cats eat fish."),
            "Use at most 2 words.\nAnswer in lowercase.\nDo not use punctuation.");
  // All four features differ: 2 words against 5, no list, sentence case against Title Case,
  // punctuation against none.
  EXPECT_EQ(contrast_rules(" Whales sing.", "\n- Whales Sing\n- Whales Eat Krill"),
            "Use at most 2 words.\nDo not use a list.\nUse sentence case.\nUse punctuation.");
  // 9 words against 5, a list, both sentence case, no punctuation against punctuation.
  EXPECT_EQ(contrast_rules(kAgentRulesWhaleList, " Whales sing. Whales eat krill."),
            "Use at least 9 words.\nAnswer as a list.\nDo not use punctuation.");
}

TEST(AgentRules, ContrastOfEqualAnswersIsEmpty) {
  EXPECT_EQ(contrast_rules(" Cats meow.", " Cats meow."), "");
  // Different words, same features (2 words, sentence case, punctuation).
  EXPECT_EQ(contrast_rules(" Dogs bark.", " Cats meow."), "");
}

TEST(AgentRules, ContrastAsksAVerboseUserForAtLeastTheirLength) {
  EXPECT_EQ(contrast_rules(" Cats are small animals. Cats eat fish.", " Cats meow."),
            "Use at least 7 words.");
}

TEST(AgentRules, ContrastSaysWordForOneWord) {
  EXPECT_EQ(contrast_rules(" Small.", " Cats are small animals."), "Use at most 1 word.");
  EXPECT_EQ(contrast_rules(" Cats meow.", " Small."), "Use at least 2 words.");
}

TEST(AgentRules, ContrastOfCaseAlone) {
  EXPECT_EQ(contrast_rules(" CATS MEOW.", " Cats meow."), "Answer in all caps.");
  EXPECT_EQ(contrast_rules(" Cats Meow", " cats meow"), "Capitalize every word.");
  EXPECT_EQ(contrast_rules(" Cats meow", " CATS MEOW"), "Use sentence case.");
}

TEST(AgentRules, ContrastWritesNoCaseRuleForAnAnswerWithoutLetters) {
  // 0 words against 2; no case rule although the zero-shot answer is lowercase.
  EXPECT_EQ(contrast_rules(" ...", " cats meow"), "Use at most 0 words.\nUse punctuation.");
}

TEST(AgentRules, NoBaselineStatesEveryFeature) {
  EXPECT_EQ(no_baseline_rules(" cats meow"),
            "Use at most 2 words.\nDo not use a list.\nAnswer in lowercase.\nDo not use "
            "punctuation.");
  EXPECT_EQ(no_baseline_rules(" Small."),
            "Use at most 1 word.\nDo not use a list.\nUse sentence case.\nUse punctuation.");
  EXPECT_EQ(no_baseline_rules("\n- Whales Sing\n- Whales Eat Krill"),
            "Use at most 5 words.\nAnswer as a list.\nCapitalize every word.\nDo not use "
            "punctuation.");
  EXPECT_EQ(no_baseline_rules(" CATS ARE SMALL ANIMALS."),
            "Use at most 4 words.\nDo not use a list.\nAnswer in all caps.\nUse punctuation.");
  // Without letters there is no case rule.
  EXPECT_EQ(no_baseline_rules(""),
            "Use at most 0 words.\nDo not use a list.\nDo not use "
            "punctuation.");
}

TEST(AgentRules, SatisfiesChecksEveryRule) {
  const std::string rules = "Use at most 2 words.\nAnswer in lowercase.\nDo not use punctuation.";
  EXPECT_TRUE(satisfies_rules(" cats meow", rules));
  EXPECT_TRUE(satisfies_rules(" cats", rules));
  EXPECT_FALSE(satisfies_rules(" cats meow loudly", rules));  // 3 words
  EXPECT_FALSE(satisfies_rules(" Cats meow", rules));         // sentence case
  EXPECT_FALSE(satisfies_rules(" cats meow.", rules));        // punctuation
  // No rules: anything goes.
  EXPECT_TRUE(satisfies_rules(" CATS ARE SMALL ANIMALS.", ""));
  EXPECT_TRUE(satisfies_rules("", ""));
}

TEST(AgentRules, SatisfiesLengthRules) {
  EXPECT_TRUE(satisfies_rules(" Cats eat fish.", "Use at least 3 words."));
  EXPECT_FALSE(satisfies_rules(" Cats eat fish.", "Use at least 4 words."));
  EXPECT_TRUE(satisfies_rules(" Cats eat fish.", "Use at most 3 words."));
  EXPECT_FALSE(satisfies_rules(" Cats eat fish.", "Use at most 2 words."));
  EXPECT_TRUE(satisfies_rules(" Small.", "Use at most 1 word."));
  EXPECT_FALSE(satisfies_rules(" Small cats.", "Use at most 1 word."));
  EXPECT_TRUE(satisfies_rules(" ...", "Use at most 0 words."));
  EXPECT_FALSE(satisfies_rules(" cats", "Use at most 0 words."));
  // The bullets are not counted: 9 words.
  EXPECT_TRUE(satisfies_rules(kAgentRulesWhaleList, "Use at least 9 words."));
  EXPECT_FALSE(satisfies_rules(kAgentRulesWhaleList, "Use at least 10 words."));
}

TEST(AgentRules, SatisfiesListCaseAndPunctuationRules) {
  EXPECT_TRUE(satisfies_rules("\n- Whales sing\n- Whales eat krill", "Answer as a list."));
  EXPECT_FALSE(satisfies_rules(" Whales sing.", "Answer as a list."));
  EXPECT_TRUE(satisfies_rules(" Whales sing.", "Do not use a list."));
  EXPECT_FALSE(satisfies_rules("\n- Whales sing", "Do not use a list."));

  EXPECT_TRUE(satisfies_rules(" CATS MEOW", "Answer in all caps."));
  EXPECT_FALSE(satisfies_rules(" Cats Meow", "Answer in all caps."));
  EXPECT_TRUE(satisfies_rules(" Cats Meow", "Capitalize every word."));
  EXPECT_FALSE(satisfies_rules(" CATS MEOW", "Capitalize every word."));  // that is all caps
  EXPECT_TRUE(satisfies_rules(" Cats meow.", "Use sentence case."));
  EXPECT_FALSE(satisfies_rules(" Cats Meow.", "Use sentence case."));
  EXPECT_TRUE(satisfies_rules(" cats meow", "Answer in lowercase."));
  // A text without letters has no case and meets no case rule.
  EXPECT_FALSE(satisfies_rules(" ...", "Answer in lowercase."));
  EXPECT_FALSE(satisfies_rules(" 42", "Use sentence case."));

  EXPECT_TRUE(satisfies_rules(" Cats meow.", "Use punctuation."));
  EXPECT_FALSE(satisfies_rules(" Cats meow", "Use punctuation."));
  EXPECT_TRUE(satisfies_rules(" Cats meow", "Do not use punctuation."));
  EXPECT_FALSE(satisfies_rules(" Cats meow!", "Do not use punctuation."));
}

TEST(AgentRules, SatisfiesRejectsALineThatIsNoRuleSentence) {
  EXPECT_THROW(satisfies_rules(" cats", "Be brief."), Error);
  // The message quotes the line, also when an earlier rule already failed.
  const std::string message =
      agent_rules_error_message(" cats meow loudly", "Use at most 2 words.\nBe brief.");
  EXPECT_NE(message.find("[rules]"), std::string::npos) << message;
  EXPECT_NE(message.find("\"Be brief.\""), std::string::npos) << message;
  // Near misses of the sentences are no rules either.
  for (const char* line :
       {"Use at most 1 words.", "Use at most 2 word.", "Use at most two words.",
        "Use at most 02 words.", "Use at most -1 words.", "Use at most  2 words.",
        "use sentence case.", "Answer in lowercase", "Answer in lowercase. "}) {
    const std::string quoted = std::string("\"") + line + "\"";
    EXPECT_NE(agent_rules_error_message(" cats", line).find(quoted), std::string::npos) << line;
  }
  // An empty line (a trailing newline) is no rule.
  EXPECT_THROW(satisfies_rules(" cats", "Answer in lowercase.\n"), Error);
  EXPECT_THROW(satisfies_rules(" cats", "Answer in lowercase.\n\nUse at most 2 words."), Error);
}

TEST(AgentRules, TheUserMeetsTheirRulesAndTheZeroShotAnswerDoesNot) {
  // Each contrast rule is one the zero-shot answer breaks, and the user's answer meets all.
  const std::string user = " cats meow";
  const std::string zero_shot = " Cats are small animals. Cats eat fish.";
  const std::string rules = "Use at most 2 words.\nAnswer in lowercase.\nDo not use punctuation.";
  ASSERT_EQ(contrast_rules(user, zero_shot), rules);
  EXPECT_TRUE(satisfies_rules(user, rules));
  EXPECT_FALSE(satisfies_rules(zero_shot, rules));
  for (const char* line :
       {"Use at most 2 words.", "Answer in lowercase.", "Do not use punctuation."})
    EXPECT_FALSE(satisfies_rules(zero_shot, line)) << line;
}

TEST(AgentRules, FewShotSystemListsTheExamplesAsWritten) {
  EXPECT_EQ(few_shot_system({" Cats meow.", "\n- Whales sing\n- Whales eat krill"}),
            "Answer in the style of these examples:\nExample: Cats meow.\nExample:\n- Whales "
            "sing\n- Whales eat krill");
  EXPECT_EQ(few_shot_system({" cats eat fish"}),
            "Answer in the style of these examples:\nExample: cats eat fish");
  EXPECT_EQ(few_shot_system({}), "Answer in the style of these examples:");
}

}  // namespace
}  // namespace tailor

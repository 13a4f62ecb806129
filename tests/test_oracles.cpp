// The heuristic preference oracles (judges/): the text statistics against values counted
// by hand on hand-made strings, each oracle's direction on a pair with an obvious answer, ties,
// the weighted-mixture vote and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

#include "common/error.h"
#include "judges/oracles.h"
#include "judges/pos_lexicon_data.h"
#include "judges/text_features.h"

// In tailor::judges rather than `using namespace tailor::judges` at file scope, which would carry
// over into the files after this one in a unity build.
namespace tailor::judges {
namespace {

using Strings = std::vector<std::string>;

TEST(OracleTextFeatures, WordsStripPunctuationAndSplitAtWhitespace) {
  EXPECT_EQ(words("Hello, world!\tdon't -- (x)\n"), (Strings{"Hello", "world", "don't", "x"}));
  EXPECT_EQ(words("  "), Strings{});
  EXPECT_EQ(words("“naïve”"), Strings{"naïve"});  // Unicode quotes are punctuation
}

TEST(OracleTextFeatures, SentencesSplitAtTerminatorsAndNewlinesNotDecimals) {
  EXPECT_EQ(sentences("Hi there. How are you?! Fine\nThanks"),
            (Strings{"Hi there", " How are you", " Fine", "Thanks"}));
  EXPECT_EQ(sentences("Pi is 3.14 today."), Strings{"Pi is 3.14 today"});
  EXPECT_EQ(sentences("... !\n"), Strings{});
}

TEST(OracleTextFeatures, PunctuationRatioCountsNonSpaceCodePoints) {
  EXPECT_DOUBLE_EQ(punctuation_ratio("a, b."), 0.5);  // a , b . -> 2 of 4
  EXPECT_DOUBLE_EQ(punctuation_ratio("Hello, world!"), 2.0 / 12.0);
  EXPECT_DOUBLE_EQ(punctuation_ratio("“hi”"), 0.5);   // 4 code points (not 8 bytes), 2 quotes
  EXPECT_DOUBLE_EQ(punctuation_ratio("a+b=c"), 0.4);  // ASCII symbols count (string.punctuation)
  EXPECT_DOUBLE_EQ(punctuation_ratio(" \n"), 0.0);
}

TEST(OracleTextFeatures, SyllablesByVowelGroupsAndSilentE) {
  EXPECT_EQ(count_syllables("the"), 1);        // e; the silent-e rule never goes below 1
  EXPECT_EQ(count_syllables("make"), 1);       // a, e -> silent final e
  EXPECT_EQ(count_syllables("table"), 2);      // a, e; consonant + "le" keeps its syllable
  EXPECT_EQ(count_syllables("people"), 2);     // eo, e; p + "le"
  EXPECT_EQ(count_syllables("Beautiful"), 3);  // eau, i, u
  EXPECT_EQ(count_syllables("queue"), 1);      // ueue
  EXPECT_EQ(count_syllables("rhythm"), 1);     // y is a vowel
  EXPECT_EQ(count_syllables("cat."), 1);       // non-letters ignored
  EXPECT_EQ(count_syllables("42"), 1);         // no letters -> 1
}

TEST(OracleTextFeatures, FleschReadingEaseByHand) {
  // The(1) cat(1) sat(1) on(1) the(1) mat(1): 6 words, 6 syllables, 1 sentence.
  EXPECT_NEAR(flesch_reading_ease("The cat sat on the mat."), 206.835 - 1.015 * 6 - 84.6 * 1.0,
              1e-9);
  EXPECT_NEAR(flesch_reading_ease("The cat sat on the mat."), 116.145, 1e-9);
  // Reading(ea,i = 2) is(1) wonderful(o,e,u = 3). Cats(1) sleep(1): 5 words, 8 syllables,
  // 2 sentences -> 206.835 - 1.015 * 2.5 - 84.6 * 1.6 = 68.9375.
  EXPECT_NEAR(flesch_reading_ease("Reading is wonderful. Cats sleep"), 68.9375, 1e-9);
  EXPECT_EQ(flesch_reading_ease(""), 0.0);
}

TEST(OracleTextFeatures, CountCodePointsNotBytes) {
  EXPECT_EQ(count_code_points("héé"), 3u);  // 5 bytes
  EXPECT_EQ(count_code_points(" a\n"), 3u);
  EXPECT_EQ(count_code_points(""), 0u);
}

TEST(OracleTextFeatures, MeanWordLengthInCodePoints) {
  EXPECT_DOUBLE_EQ(mean_word_length("I am happy!"), 8.0 / 3.0);  // 1 + 2 + 5
  EXPECT_DOUBLE_EQ(mean_word_length("naïve café"), 4.5);         // 5 + 4 code points, not bytes
  EXPECT_EQ(mean_word_length("?!"), 0.0);
}

TEST(OracleTextFeatures, LevenshteinDistanceAndSimilarity) {
  EXPECT_EQ(levenshtein_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(levenshtein_distance("flaw", "lawn"), 2u);
  EXPECT_EQ(levenshtein_distance("abc", ""), 3u);
  EXPECT_EQ(levenshtein_distance("café", "cafe"), 1u);  // one code point substituted
  EXPECT_DOUBLE_EQ(levenshtein_similarity("kitten", "sitting"), 1.0 - 3.0 / 7.0);
  EXPECT_DOUBLE_EQ(levenshtein_similarity("abc", ""), 0.0);
  EXPECT_DOUBLE_EQ(levenshtein_similarity("", ""), 1.0);
  EXPECT_DOUBLE_EQ(levenshtein_similarity("same", "same"), 1.0);
}

TEST(OracleTextFeatures, CommonWords) {
  EXPECT_EQ(lookup_form("Don't"), "don");
  EXPECT_EQ(lookup_form("CAT’S"), "cat");
  for (const char* w : {"the", "The", "I", "a", "house", "Don't", "dog"})
    EXPECT_TRUE(is_common_word(w)) << w;
  for (const char* w : {"perspicacity", "ubiquitous", "x", "42"})
    EXPECT_FALSE(is_common_word(w)) << w;
  EXPECT_DOUBLE_EQ(common_word_ratio("The house of perspicacity."), 0.75);
  EXPECT_EQ(common_word_ratio(""), 0.0);
}

TEST(OracleTextFeatures, LowercaseRatioAmongLetters) {
  EXPECT_DOUBLE_EQ(lowercase_ratio("Hello World"), 0.8);  // 8 of 10 letters
  EXPECT_DOUBLE_EQ(lowercase_ratio("ÉCOLE école 123"), 0.5);
  EXPECT_EQ(lowercase_ratio("123 !"), 0.0);
}

// Each word's lines in /usr/share/wordnet/index.{adj,adv,noun,verb} (wordnet-base 1:3.0-37),
// read by hand, as (tagged senses, senses) per part of speech.
TEST(OracleTextFeatures, AdjectivesAndAdverbsByWordNetDominantPartOfSpeech) {
  for (const char* w : {
           "quick",    // adjective (6, 6) beats noun (0, 1)
           "quickly",  // adverb only (2, 3)
           "very",     // adjective and adverb (2, 2)
           "not",      // adverb only (1, 1)
           "Happily",  // adverb only (1, 2); looked up lowercased
           "well",     // adverb (8, 13) beats noun (2, 5) and verb (1, 1)
           "light",    // adjective (12, 25) and noun (12, 15): equal tags, more adjective senses
       })
    EXPECT_TRUE(is_adjective_or_adverb(w)) << w;
  for (const char* w : {
           "cat",    // noun (1, 8), verb (0, 2)
           "run",    // verb (29, 41) beats noun (7, 16); no adjective or adverb
           "fox",    // noun (2, 7), verb (0, 3)
           "green",  // noun (2, 8) beats adjective (1, 5)
           "today",  // noun (2, 2) and adverb (2, 2) tie: the tie goes to the noun
           "the",    // not in WordNet
       })
    EXPECT_FALSE(is_adjective_or_adverb(w)) << w;
}

// None of these forms is in WordNet's index files; their bases are adjectives there.
TEST(OracleTextFeatures, ComparativesAndSuperlativesByTheFallback) {
  for (const char* w : {
           "smallest",  // small
           "nicer",     // nice + r: stem + "e"
           "happier",   // happy: final i -> y
           "happiest",  // happy
           "biggest",   // big: doubled final consonant undoubled
           "Stronger",  // strong
           "warmer",    // a WordNet noun (0 tagged senses): left to the fallback, warm
       })
    EXPECT_TRUE(is_adjective_or_adverb(w)) << w;
  for (const char* w : {
           "number",  // noun (9, 11), verb (3, 6): not numb + er
           "lower",   // verb (3, 5), noun (0, 1): WordNet's reading, not low + er
           "her",     // stem "h" too short
           "sleeps",  // not in WordNet, no -er/-est
       })
    EXPECT_FALSE(is_adjective_or_adverb(w)) << w;
}

TEST(OracleTextFeatures, AdjectiveAdverbRatioByHand) {
  // The(-) very(+) quick(+) fox(-) runs(-: not in WordNet) happily(+): 3 of 6.
  EXPECT_DOUBLE_EQ(adjective_adverb_ratio("The very quick fox runs happily."), 0.5);
  // The(-) nicer(+: nice) cat(-) sleeps(-) quite(+: adverb only) happily(+) today(-: tie): 3 of 7.
  EXPECT_DOUBLE_EQ(adjective_adverb_ratio("The nicer cat sleeps quite happily today."), 3.0 / 7.0);
  EXPECT_EQ(adjective_adverb_ratio("?!"), 0.0);
}

// The lookup is a binary search, which needs the generated lists sorted byte-wise and unique.
TEST(OracleTextFeatures, PosLexiconListsAreSortedAndDisjoint) {
  auto check_sorted = [](const char* const* list, size_t size) {
    ASSERT_GT(size, 0u);
    for (size_t i = 1; i < size; ++i)
      ASSERT_LT(std::string(list[i - 1]), std::string(list[i])) << i;
  };
  check_sorted(detail::kAdjectivesAdverbs, detail::kAdjectivesAdverbsCount);
  check_sorted(detail::kNotComparatives, detail::kNotComparativesCount);
  const std::vector<std::string> lexicon(
      detail::kAdjectivesAdverbs, detail::kAdjectivesAdverbs + detail::kAdjectivesAdverbsCount);
  for (size_t i = 0; i < detail::kNotComparativesCount; ++i)
    EXPECT_FALSE(std::binary_search(lexicon.begin(), lexicon.end(), detail::kNotComparatives[i]))
        << detail::kNotComparatives[i];
}

TEST(OracleTextFeatures, DependencyDepthEstimate) {
  EXPECT_EQ(dependency_depth_estimate("Hi"), 1);                      // min(1, 3)
  EXPECT_EQ(dependency_depth_estimate("Cats sleep"), 2);              // min(2, 3)
  EXPECT_EQ(dependency_depth_estimate("The cat sat on the mat"), 4);  // 3 + on
  // 13 words -> 3; that, which: +2 each; in: +1; ( [ nesting 2 -> 10.
  EXPECT_EQ(
      dependency_depth_estimate("I know that the dog which barked is in (the big [old] house)"),
      10);
  EXPECT_EQ(max_dependency_depth("Cats sleep. The cat sat on the mat.\nHi"), 4);
  EXPECT_EQ(max_dependency_depth(""), 0);
}

TEST(Oracles, NamesInOrderAndGroups) {
  const Strings expected{"no_punctuation",    "readability",  "new_lines",
                         "anti_new_lines",    "short_words",  "shallow_dependency_tree",
                         "prompt_similarity", "simple_words", "shorter_length",
                         "lowercase",         "adjectives"};
  EXPECT_EQ(oracle_names(), expected);
  int train = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const Oracle& o = oracle(expected[i]);
    EXPECT_EQ(o.name, expected[i]);
    EXPECT_EQ(o.group, i < 8 ? "train" : "test") << o.name;
    train += o.group == "train";
  }
  EXPECT_EQ(train, 8);
}

TEST(Oracles, ScoresAreTheStatisticsWithTheDocumentedSign) {
  auto score = [](const char* name, const std::string& prompt, const std::string& completion) {
    return oracle(name).score(prompt, completion);
  };
  EXPECT_DOUBLE_EQ(score("no_punctuation", "", "a, b."), -0.5);
  EXPECT_NEAR(score("readability", "", "The cat sat on the mat."), 116.145, 1e-9);
  EXPECT_EQ(score("new_lines", "", "a\nb\n"), 2.0);
  EXPECT_EQ(score("anti_new_lines", "", "a\nb\n"), -2.0);
  EXPECT_DOUBLE_EQ(score("short_words", "", "I am happy"), -8.0 / 3.0);
  EXPECT_EQ(score("shallow_dependency_tree", "", "The cat sat on the mat."), -4.0);
  EXPECT_DOUBLE_EQ(score("prompt_similarity", "kitten", "sitting"), 1.0 - 3.0 / 7.0);
  EXPECT_DOUBLE_EQ(score("simple_words", "", "The house of perspicacity."), 0.75);
  EXPECT_EQ(score("shorter_length", "", "one, two three."), -15.0);  // 3 + 1 + 1 + 3 + 1 + 5 + 1
  EXPECT_DOUBLE_EQ(score("lowercase", "", "Hello World"), 0.8);
  EXPECT_DOUBLE_EQ(score("adjectives", "", "The very quick fox runs happily."), 0.5);
}

// Characters, not words (the 20 Questions paper's Table 3): every code point of the completion as
// written, whitespace included.
TEST(Oracles, ShorterLengthCountsCodePoints) {
  const Oracle& shorter = oracle("shorter_length");
  EXPECT_EQ(shorter.preference, "fewer characters");
  EXPECT_EQ(shorter.score("", "abc def"), -7.0);
  EXPECT_EQ(shorter.score("", "abcdefgh"), -8.0);
  EXPECT_EQ(prefers(shorter, "", "abc def", "abcdefgh"), 1);  // 2 words beat 1 word here
  EXPECT_EQ(shorter.score("", "héé"), -3.0);                  // 5 bytes
  EXPECT_EQ(shorter.score("a long prompt", "a\nb"), -3.0);    // the prompt is not read
  EXPECT_EQ(shorter.score("", " yes  "), -6.0);               // leading and trailing spaces count
  EXPECT_EQ(prefers(shorter, "", "yes", "yes "), 1);
  EXPECT_EQ(shorter.score("", ""), 0.0);
}

TEST(Oracles, EachPrefersTheObviousCompletionEitherWay) {
  struct Case {
    const char* name;
    const char* prompt;
    const char* preferred;
    const char* other;
  };
  const Case cases[] = {
      {"no_punctuation", "", "hello world", "hello, world!!!"},
      {"readability", "", "The cat sat on the mat.",
       "Comprehensive institutional interdependencies necessitate extraordinary deliberation."},
      {"new_lines", "", "a\nb\nc", "a b c"},
      {"anti_new_lines", "", "a b c", "a\nb\nc"},
      {"short_words", "", "I am ok", "Extraordinary circumstances"},
      {"shallow_dependency_tree", "", "Cats sleep.",
       "I know that the dog which barked is in the house."},
      {"prompt_similarity", "tell me a story", "tell me a story please", "xyz"},
      {"simple_words", "", "the house of the man", "perspicacity ubiquitous"},
      {"shorter_length", "", "Yes.", "Yes, I think so."},
      {"lowercase", "", "hello there", "HELLO THERE"},
      {"adjectives", "", "very quick and happy", "the fox and the dog"},
  };
  ASSERT_EQ(std::size(cases), oracle_names().size());
  for (const auto& c : cases) {
    const Oracle& o = oracle(c.name);
    EXPECT_EQ(prefers(o, c.prompt, c.preferred, c.other), 1) << c.name;
    EXPECT_EQ(prefers(o, c.prompt, c.other, c.preferred), -1) << c.name;
    EXPECT_EQ(mixture_prefers({{c.name, 1.0}}, c.prompt, c.preferred, c.other), 1) << c.name;
  }
}

TEST(Oracles, TiesOnEqualStatistics) {
  for (const auto& name : oracle_names())
    EXPECT_EQ(prefers(oracle(name), "a prompt", "Same text, here.", "Same text, here."), 0) << name;
  // Different strings, equal statistic.
  EXPECT_EQ(prefers(oracle("no_punctuation"), "", "ab, cd.", "xy, zw."), 0);
  EXPECT_EQ(prefers(oracle("shorter_length"), "", "ab cd", "abcde"), 0);  // 5 code points each
  EXPECT_EQ(prefers(oracle("short_words"), "", "ab cd", "a bcd"), 0);
  EXPECT_EQ(prefers(oracle("new_lines"), "", "a\nb", "c d\n"), 0);
  EXPECT_EQ(prefers(oracle("prompt_similarity"), "abc", "abd", "xbc"), 0);  // distance 1 each
  EXPECT_EQ(prefers(oracle("lowercase"), "", "aB cD eF", "xY"), 0);         // 3/6 and 1/2
  // The tolerance: scores closer than kTieTolerance tie, farther apart do not.
  const Oracle nearly{"nearly", "test", "", [](const std::string&, const std::string& c) {
                        return c == "a" ? 1.0 : c == "b" ? 1.0 + kTieTolerance / 4 : 1.0 + 1e-6;
                      }};
  EXPECT_EQ(prefers(nearly, "", "a", "b"), 0);
  EXPECT_EQ(prefers(nearly, "", "c", "a"), 1);
  EXPECT_EQ(prefers(nearly, "", "a", "c"), -1);
}

TEST(Oracles, MixtureIsAWeightedVote) {
  // a: 5 characters, no lowercase letters; b: 11 characters, all lowercase. shorter_length prefers
  // a, lowercase prefers b.
  const std::string a = "HELLO", b = "hello there";
  EXPECT_EQ(mixture_prefers({{"shorter_length", 1.0}, {"lowercase", 0.5}}, "", a, b), 1);
  EXPECT_EQ(mixture_prefers({{"shorter_length", 0.3}, {"lowercase", 0.7}}, "", a, b), -1);
  EXPECT_EQ(mixture_prefers({{"shorter_length", 0.5}, {"lowercase", 0.5}}, "", a, b), 0);
  // A negative weight is the opposite taste: longer is better.
  EXPECT_EQ(mixture_prefers({{"shorter_length", -1.0}}, "", a, b), -1);
  // An oracle that ties adds nothing: anti_new_lines sees no newline in either.
  EXPECT_EQ(mixture_prefers({{"shorter_length", 0.6}, {"lowercase", 0.5}, {"anti_new_lines", 9.0}},
                            "", a, b),
            1);
}

TEST(Oracles, UnknownNamesAndBadWeightsAreErrors) {
  try {
    oracle("length");
    FAIL() << "expected an Error";
  } catch (const tailor::Error& e) {
    EXPECT_EQ(e.scope(), "oracle");
    const std::string what = e.what();
    EXPECT_NE(what.find("\"length\""), std::string::npos) << what;
    for (const auto& name : oracle_names())
      EXPECT_NE(what.find(name), std::string::npos) << what;
  }
  EXPECT_THROW(mixture_prefers({{"bogus", 1.0}}, "", "a", "b"), tailor::Error);
  EXPECT_THROW(mixture_prefers({}, "", "a", "b"), tailor::Error);
  EXPECT_THROW(
      mixture_prefers({{"lowercase", std::numeric_limits<double>::quiet_NaN()}}, "", "a", "b"),
      tailor::Error);
  EXPECT_THROW(mixture_prefers({{"lowercase", INFINITY}}, "", "a", "b"), tailor::Error);
}

}  // namespace
}  // namespace tailor::judges

// Text statistics behind the heuristic preference oracles (judges/oracles.h). Every
// function is deterministic, needs no data outside this library and works on UTF-8 text, counting
// Unicode code points (ICU's character properties; invalid bytes count as U+FFFD).
//
// Definitions shared by the functions below:
// - whitespace: ICU's White_Space property (space, tab, newline, no-break space, ...).
// - punctuation: the 32 ASCII characters of Python's string.punctuation,
//     !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
//   and, beyond ASCII, Unicode general category P* (u_ispunct: curly quotes, dashes, ...).
// - words: the text split at whitespace, each piece stripped of leading and trailing punctuation;
//   the pieces left non-empty are the words ("Hello, world!" -> Hello, world; "don't" stays one
//   word; "--" is none).
// - sentences: the text split at runs of '.', '!', '?' and newlines, except a '.' with a digit on
//   both sides (3.14); the pieces that contain at least one word are the sentences.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tailor::judges {

std::vector<std::string> words(const std::string& text);
std::vector<std::string> sentences(const std::string& text);  // raw text of each sentence

size_t count_code_points(const std::string& text);
size_t count_newlines(const std::string& text);  // '\n' characters

// Punctuation code points / non-whitespace code points; 0 for text with none.
double punctuation_ratio(const std::string& text);

// Syllables of one word, the usual vowel-group heuristic: lowercase the ASCII letters (everything
// else is ignored) and count maximal runs of a, e, i, o, u, y; then subtract one for a silent
// final 'e' (the word ends in 'e', the count is above one, and the word does not end in a
// consonant + "le" as in "table"). At least 1, also for a word without ASCII letters ("42").
int count_syllables(const std::string& word);

// Flesch reading ease 206.835 - 1.015 (words / sentences) - 84.6 (syllables / words) with the
// words, sentences and count_syllables above; 0 for text without words.
double flesch_reading_ease(const std::string& text);

// Mean code points per word; 0 for text without words.
double mean_word_length(const std::string& text);

// Levenshtein distance over code points (insert, delete, substitute, each cost 1), and the
// similarity 1 - distance / max(length a, length b), 1 when both are empty.
size_t levenshtein_distance(const std::string& a, const std::string& b);
double levenshtein_similarity(const std::string& a, const std::string& b);

// The form a word is looked up in: lowercased (ICU simple case mapping), cut at its first
// apostrophe (' or U+2019: "Don't" -> "don", "cat's" -> "cat").
std::string lookup_form(const std::string& word);

// Common English words: 1802 words w, each a lowercase entry of /usr/share/dict/american-english
// (Debian wamerican 2020.12.07) such that GPT-2's vocabulary (assets/tokenizers/gpt2/vocab.json)
// has a token "Ġ" + x with id < 5000, x ASCII letters with lowercase(x) = w ("Ġthe", "ĠThe",
// "ĠI"); words of one letter other than "a" and "i" are left out. GPT-2's byte-level BPE learned
// its merges in order of frequency on WebText, so a word that became one token early is frequent.
// Looked up by lookup_form.
bool is_common_word(const std::string& word);
double common_word_ratio(const std::string& text);  // common words / words; 0 without words

// Letters (Unicode L*, u_isalpha) that are lowercase (Ll, u_islower) / letters; 0 without letters.
double lowercase_ratio(const std::string& text);

// Whether one word is an adjective or adverb by WordNet 3.0, out of context (no tagger: a word
// mostly used as a noun, like "green", never counts). Its lookup_form is looked up in a lexicon
// built into tailor (judges/pos_lexicon_data.h; source and rule in assets/lexicons/README.md): the
// WordNet words whose dominant part of speech is adjective or adverb, each part of speech ranked
// by (senses tagged in SemCor, senses) and a tie going to noun/verb. A word not there may be a
// comparative or superlative: ending in "er" or "est" with a stem of 2+ letters, it counts when
// the stem, the stem + "e", the stem with a final "i" as "y" or the stem with a doubled final
// consonant undoubled is in the lexicon (smaller, nicer, happier, biggest), unless WordNet lists
// the word itself as a noun or verb seen in SemCor (number is not numb + er; lower, cooler).
// Words outside WordNet (the, and, this) are neither.
bool is_adjective_or_adverb(const std::string& word);
double adjective_adverb_ratio(const std::string& text);  // such words / words; 0 without words

// Estimated depth of the dependency tree of one sentence (its raw text), counting nodes on the
// longest root-to-leaf path, without a parser:
//   min(words, 3) + 2 * subordinators + prepositions + deepest bracket nesting
// min(words, 3): a simple clause (root verb <- subject <- determiner: "The cat sat" is 3);
// subordinators: words that open an embedded clause, each two levels deeper (the clause's verb
// and its own dependents): that which who whom whose whether if unless because although though
// while whereas since until when whenever where wherever;
// prepositions: each opens a nested phrase one level deeper: of in on at by for with from to into
// onto upon about above across after against along among around before behind below beneath
// beside between beyond during except inside near off outside over past through throughout toward
// towards under underneath within without via;
// bracket nesting: the deepest nesting of ( [ { in the sentence's raw text.
// 0 for a sentence without words.
int dependency_depth_estimate(const std::string& sentence);
int max_dependency_depth(const std::string& text);  // max over sentences; 0 without sentences

}  // namespace tailor::judges

// The part-of-speech lexicon behind is_adjective_or_adverb (judges/text_features.h), compiled in
// so that no data file is needed at run time. Defined in judges/pos_lexicon_data.cpp, which
// tools/gen_pos_lexicon.py generates from WordNet 3.0 (assets/lexicons/README.md has the rule).
#pragma once

#include <cstddef>

namespace tailor::judges::detail {

// Lowercase words whose dominant part of speech in WordNet is adjective or adverb; sorted in byte
// order, no duplicates.
extern const char* const kAdjectivesAdverbs[];
extern const size_t kAdjectivesAdverbsCount;

// WordNet words that are not in kAdjectivesAdverbs but whose -er/-est fallback would reach an
// entry there ("number" -> "numb"); sorted in byte order, no duplicates.
extern const char* const kNotComparatives[];
extern const size_t kNotComparativesCount;

}  // namespace tailor::judges::detail

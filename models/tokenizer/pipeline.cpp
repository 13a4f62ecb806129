#include "models/tokenizer/pipeline.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "models/tokenizer/byte_level.h"

namespace tailor::tokenizer {

namespace {

constexpr char32_t kStrayByte = 0xFFFFFFFF;

// The character at text[pos] and its length in bytes; a byte that does not start well-formed
// UTF-8 is one "character" kStrayByte.
std::pair<char32_t, size_t> char_at(std::string_view text, size_t pos) {
  char32_t cp = 0;
  const size_t len = byte_level::decode_utf8(text, pos, cp);
  return len == 0 ? std::pair{kStrayByte, size_t(1)} : std::pair{cp, len};
}

// Rust regex \s: Unicode White_Space.
bool is_space(char32_t cp) {
  if (cp == kStrayByte) return false;
  if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
  return u_hasBinaryProperty(UChar32(cp), UCHAR_WHITE_SPACE);
}

// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
bool is_word(char32_t cp) {
  if (cp == kStrayByte) return false;
  if (cp < 0x80)
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  if (u_hasBinaryProperty(UChar32(cp), UCHAR_ALPHABETIC) ||
      u_hasBinaryProperty(UChar32(cp), UCHAR_JOIN_CONTROL))
    return true;
  switch (u_charType(UChar32(cp))) {
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
    case U_DECIMAL_DIGIT_NUMBER:
    case U_CONNECTOR_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

// Whether the last character of text[0, end) (end > 0) is a word character. A character ends
// at `end` if a well-formed sequence of 1 to 4 bytes does; its lead byte cannot belong to an
// earlier sequence, so this agrees with decoding from the start.
bool last_char_is_word(std::string_view text, size_t end) {
  for (size_t back = 1; back <= 4 && back <= end; ++back) {
    char32_t cp = 0;
    if (byte_level::decode_utf8(text.substr(0, end), end - back, cp) == back) return is_word(cp);
  }
  return false;  // a stray byte
}

// Start of the whitespace run that ends text[0, end) (Rust `\s*$`).
size_t trailing_space_start(std::string_view text, size_t end, size_t from) {
  size_t run = from;
  for (size_t pos = from; pos < end;) {
    const auto [cp, len] = char_at(text.substr(0, end), pos);
    pos += len;
    if (!is_space(cp)) run = pos;
  }
  return run;
}

void replace_all(std::string& s, std::string_view pattern, std::string_view content) {
  if (pattern.empty() || s.find(pattern) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(pattern, pos)) != std::string::npos; pos = hit + pattern.size()) {
    out.append(s, pos, hit - pos);
    out.append(content);
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// HF Strip: drops up to `start` leading and `stop` trailing `content` characters.
std::string strip(const std::string& token, std::string_view content, size_t start, size_t stop) {
  std::vector<std::pair<size_t, size_t>> chars;  // (offset, length)
  for (size_t pos = 0; pos < token.size();) {
    const size_t len = char_at(token, pos).second;
    chars.push_back({pos, len});
    pos += len;
  }
  const auto is_content = [&](size_t i) {
    return std::string_view(token).substr(chars[i].first, chars[i].second) == content;
  };
  size_t first = 0;
  while (first < std::min(start, chars.size()) && is_content(first))
    ++first;
  size_t last = chars.size();
  for (size_t i = 0; i < stop && last > first && is_content(last - 1); ++i)
    --last;
  if (first >= last) return "";
  const size_t begin = chars[first].first;
  const size_t end = chars[last - 1].first + chars[last - 1].second;
  return token.substr(begin, end - begin);
}

}  // namespace

int byte_fallback_value(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
  const int hi = hex_digit(token[3]), lo = hex_digit(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string byte_fallback_token(uint8_t byte) {
  char buffer[8];
  std::snprintf(buffer, sizeof(buffer), "<0x%02X>", byte);
  return buffer;
}

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)) {}

std::vector<Split> AddedTokenMatcher::split(std::string_view text, bool allow_special) const {
  std::vector<Split> splits;
  std::vector<size_t> active;
  for (size_t k = 0; k < tokens_.size(); ++k)
    if (!patterns_[k].empty() && (allow_special || !tokens_[k].special)) active.push_back(k);
  std::vector<size_t> next(tokens_.size(), 0);  // next occurrence at or after `search`
  for (size_t k : active)
    next[k] = text.find(patterns_[k]);
  size_t search = 0;  // where the next match may start
  size_t done = 0;    // text before this is already in `splits`
  while (!active.empty()) {
    size_t best = std::string_view::npos;
    size_t best_k = 0;
    for (size_t k : active) {
      if (next[k] != std::string_view::npos && next[k] < search)
        next[k] = text.find(patterns_[k], search);
      if (next[k] == std::string_view::npos) continue;
      if (next[k] < best || (next[k] == best && patterns_[k].size() > patterns_[best_k].size())) {
        best = next[k];
        best_k = k;
      }
    }
    if (best == std::string_view::npos) break;
    const AddedToken& token = tokens_[best_k];
    size_t start = best, stop = best + patterns_[best_k].size();
    search = stop;
    if (token.single_word) {
      const bool word_before = start > 0 && last_char_is_word(text, start);
      const bool word_after = stop < text.size() && is_word(char_at(text, stop).first);
      if (word_before || word_after) continue;  // not a whole word: ordinary text
    }
    if (token.lstrip) start = std::max(trailing_space_start(text, start, done), done);
    if (token.rstrip) {
      while (stop < text.size()) {
        const auto [cp, len] = char_at(text, stop);
        if (!is_space(cp)) break;
        stop += len;
      }
      // HF resumes its search at the end of the token itself; resuming after the stripped
      // spaces only differs for an added token that starts with whitespace.
      search = stop;
    }
    if (done < start) splits.push_back({done, start, -1});
    splits.push_back({start, stop, token.id});
    done = stop;
  }
  if (done < text.size()) splits.push_back({done, text.size(), -1});
  return splits;
}

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text) {
  std::string s(text);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::kPrepend:
        if (!s.empty()) s.insert(0, step.content);
        break;
      case NormalizerStep::Kind::kReplace:
        replace_all(s, step.pattern, step.content);
        break;
    }
  }
  return s;
}

std::vector<std::string> metaspace_pretokenize(std::string_view piece,
                                               const MetaspaceOptions& options, bool first) {
  std::string s(piece);
  replace_all(s, " ", options.replacement);
  const bool starts_with_replacement =
      s.compare(0, options.replacement.size(), options.replacement) == 0;
  if (!starts_with_replacement && (options.prepend_scheme == PrependScheme::kAlways ||
                                   (options.prepend_scheme == PrependScheme::kFirst && first)))
    s.insert(0, options.replacement);
  std::vector<std::string> pieces;
  if (!options.split) {
    if (!s.empty()) pieces.push_back(std::move(s));
    return pieces;
  }
  // SplitDelimiterBehavior::MergedWithNext: a piece starts at every replacement character.
  size_t begin = 0;
  for (size_t hit = s.find(options.replacement, 1); hit != std::string::npos;
       hit = s.find(options.replacement, hit + options.replacement.size())) {
    pieces.push_back(s.substr(begin, hit - begin));
    begin = hit;
  }
  if (begin < s.size()) pieces.push_back(s.substr(begin));
  return pieces;
}

std::string run_decoders(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens) {
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::kReplace:
        for (std::string& t : tokens)
          replace_all(t, step.pattern, step.content);
        break;
      case DecoderStep::Kind::kByteFallback: {
        // Runs of <0xNN> tokens become their bytes (HF: U+FFFD per byte if not UTF-8).
        std::vector<std::string> out;
        bool in_bytes = false;
        for (std::string& t : tokens) {
          const int byte = byte_fallback_value(t);
          if (byte >= 0) {
            if (!in_bytes) out.emplace_back();
            out.back() += char(byte);
            in_bytes = true;
          } else {
            out.push_back(std::move(t));
            in_bytes = false;
          }
        }
        tokens = std::move(out);
        break;
      }
      case DecoderStep::Kind::kFuse: {
        std::string all;
        for (const std::string& t : tokens)
          all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::Kind::kStrip:
        for (std::string& t : tokens)
          t = strip(t, step.content, step.start, step.stop);
        break;
      case DecoderStep::Kind::kByteLevel: {
        // Each token's symbols back to bytes; a token with a character outside the byte table
        // (an added token) stays as it is. HF's ByteLevel decoder returns one string.
        std::string all;
        for (const std::string& t : tokens)
          all += byte_level::symbols_to_bytes(t).value_or(t);
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::Kind::kMetaspace: {
        const bool drop_first = step.metaspace.prepend_scheme != PrependScheme::kNever;
        for (size_t i = 0; i < tokens.size(); ++i)
          replace_all(tokens[i], step.metaspace.replacement, i == 0 && drop_first ? "" : " ");
        break;
      }
    }
  }
  std::string text;
  for (const std::string& t : tokens)
    text += t;
  return text;
}

}  // namespace tailor::tokenizer

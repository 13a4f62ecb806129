#include "judges/text_features.h"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string_view>
#include <unordered_set>

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include "judges/pos_lexicon_data.h"

namespace tailor::judges {
namespace {

// Code points of UTF-8 text; an invalid sequence gives U+FFFD.
std::vector<UChar32> decode(const std::string& text) {
  std::vector<UChar32> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const int32_t length = static_cast<int32_t>(text.size());
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(s, i, length, c);
    out.push_back(c < 0 ? 0xFFFD : c);
  }
  return out;
}

std::string encode(const std::vector<UChar32>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    uint8_t buf[U8_MAX_LENGTH];
    int32_t n = 0;
    U8_APPEND_UNSAFE(buf, n, cps[i]);
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  }
  return out;
}

bool is_space(UChar32 c) {
  return u_isUWhiteSpace(c);
}

bool is_punct(UChar32 c) {
  if (c < 0x80)
    return c > 0x20 && c < 0x7F &&
           !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  return u_ispunct(c);
}

bool is_digit(UChar32 c) {
  return c >= '0' && c <= '9';
}

// Words of code points [begin, end) of `cps`.
std::vector<std::string> words_of(const std::vector<UChar32>& cps, size_t begin, size_t end) {
  std::vector<std::string> out;
  size_t i = begin;
  while (i < end) {
    while (i < end && is_space(cps[i]))
      ++i;
    size_t j = i;
    while (j < end && !is_space(cps[j]))
      ++j;
    size_t a = i, b = j;
    while (a < b && is_punct(cps[a]))
      ++a;
    while (b > a && is_punct(cps[b - 1]))
      --b;
    if (a < b) out.push_back(encode(cps, a, b));
    i = j;
  }
  return out;
}

std::unordered_set<std::string> make_set(const char* space_separated) {
  std::unordered_set<std::string> set;
  std::istringstream in(space_separated);
  for (std::string w; in >> w;)
    set.insert(w);
  return set;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Generated once (wamerican installed) from the repository root with this Python 3:
//   import json, re
//   lower = re.compile('[a-z]+')
//   d = {l.strip() for l in open('/usr/share/dict/american-english') if lower.fullmatch(l.strip())}
//   v = json.load(open('assets/tokenizers/gpt2/vocab.json'))
//   w = {t[1:].lower() for t, i in v.items()
//        if i < 5000 and t.startswith('Ġ') and re.fullmatch('[A-Za-z]+', t[1:])}
//   print(' '.join(sorted(x for x in w if x in d | {'i'} and (len(x) > 1 or x in 'ai'))))
const char* const kCommonWords =
    "a ability able about above absolute accept access according account achieve across act "
    "action actions active activities activity actual actually ad add added adding addition "
    "additional address adjust administration adult adv advantage affect after again against age "
    "agency ago agree agreed agreement ahead aim air all alleged allow allowed allows almost "
    "alone along already also although always am amazing among amount an anal analysis and angel "
    "animals announced another answer ant anti any anyone anything app apparent appear appeared "
    "appears apple application apply approach arch are area areas argument arm around arrest art "
    "article as ask asked asking aspect ass assault assess assist associated at attack attacks "
    "attempt attention attract august author authorities authority available average avoid aw "
    "aware away back background bad ball ban band bank bar base based basic basis batter battle "
    "bay be beat beautiful became because become becomes bed been before beg began begin "
    "beginning behavior behind being belie belief believe believed below benefit benefits best "
    "bet better between beyond big biggest bill billion birth bit black block blog blood blue "
    "board body book books border born both bottom box boy brain brand break brief bring broad "
    "brother brought brow brown bud budget build building built bur burn bus business but button "
    "buy by ca cal calif call called calling calls came camera camp campaign can cancer candid "
    "candidate cannot cap capital car card cards care career carry case cases cast cat catch "
    "caught cause caused cell cells cent center central century certain certainly ch challenge "
    "chance change changed changes char character characters charge charges check chem chief "
    "child children china choice choose church cities citizens city civil claim claimed claims "
    "class clean clear clearly click climate close closed club coach code col cold collect "
    "collection college color comb come comes comfort coming comm command comment comments "
    "commission commit committee common community companies company compared complete completely "
    "complex computer con concept concern concerns condition conditions conduct conference "
    "confirmed congress connect connection cons consider considered consist cont contact contain "
    "contains content context continue continued continues contract control cook cool cop copy "
    "core correct cost costs could council count counter countries country county couple course "
    "court cover create created creating credit crime criminal crisis critic critical cross "
    "crowd cry cult culture cur current currently custom customers cut daily dam damage danger "
    "dangerous dark data date daughter day days dead deal death deb debate decades decided "
    "decision deep default defend defense definitely degree demand democratic democrats demon "
    "den department depend described design designed despite destroy detail details detect deter "
    "develop developed development device devices did die died diff difference different "
    "difficult dig digital direct direction directly director dis disc disco discuss disease "
    "display district do doc document documents does dog doing doll don done door double doubt "
    "down download draft dragon dram draw dream drink drive driver drop drug due during each ear "
    "earlier early earth easier easily east easy eat economic economy ed edit education effect "
    "effective effects effort efforts eight either elect election elements else em email employ "
    "employees end ended enemy energy enforce engine enjoy enough ensure enter entire "
    "environment episode equal error es especially est establish established etc euro even event "
    "events eventually ever every everyone everything evidence ex exact exactly exam example "
    "except exec executive exist existing expand expect expected experience explain explained "
    "express extra extreme extremely eye eyes face fact fail failed fair faith fall false "
    "families family fan fans far fast fat father favor favorite fear feat feature features "
    "federal feed feel feeling feet fell felt fem female few field fig fight fighting figure "
    "file files film fin final finally financial find finding fine fire firm first fit five fix "
    "fl floor focus follow followed following food foot football for force forced forces fore "
    "foreign form former forward found four fr franc free freedom french fresh friend friends "
    "from front full fully fun function fund funding further future gain game games gas gave gen "
    "general generally get gets getting girl girls give given gives giving global go goal goals "
    "god goes going gold gone good google got govern government gr grad grand graph great "
    "greater green ground group groups grow growing growth guard guess gun guy guys ha had hair "
    "half hall ham hand hands happen happened happens happy hard harm has have haven having he "
    "head health hear heard hearing heart heat heavy held help helped her here hero high higher "
    "highest highly hill him himself his history hit hold holding home hop hope hospital host "
    "hot hour hours house how however huge hum human hundred i ice id idea ideas if ii ill image "
    "images immediately imp impact implement import important improve in inc incident include "
    "included includes including income increase increased increasing ind independent individual "
    "individuals industry influence inform information initial inn ins inside install instance "
    "instead int intelligence inter interest interested interesting intern international "
    "internet interview into invest investigation investment involved is issue issued issues it "
    "item items its itself jack japan job jobs john join journal jump just justice keep kept key "
    "kick kids kill killed kind king knew know knowledge known knows la lab labor lack land "
    "language large larger largest last lat late later latest launch law laws lay lead leader "
    "leaders leading league learn learned learning least leave leaving led left leg legal length "
    "less let letter level levels life light like likely limit limited line lines link list "
    "liter little live lives living lo load local location log long longer look looked looking "
    "looks lord lose loss lost lot love low lower machine mad made main major majority make "
    "makes making male man management manager many map mar march mark market marriage mart mass "
    "massive master mat match material matt matter max may maybe me mean meaning means meant "
    "measure med media medical meet meeting member members memory men mention mentioned mess "
    "message met method mid middle might mike mil miles military mill million min mind minister "
    "minor minutes miss missing mission mist mo mod mode model models modern mom moment money "
    "month months more morning most mostly mother mount move moved movement movie moving much "
    "multiple music must my myself name named names nation national natural nature near nearly "
    "necessary need needed needs neg negative neigh neighbor net network never new news next "
    "nice night no non none nor norm normal north not note noted notes nothing notice now "
    "nuclear number numbers object obvious occur of off offer offered offers office officer "
    "officers official officials often oh oil old older on once one ones online only onto op "
    "open opened opening operation operations opinion opportunity opt option options or order "
    "organ organization original other others otherwise our out outside over overall own owner "
    "owners pack page paid pain pal pan paper par parent parents park part particular "
    "particularly parties partners parts party pass passed past pat path patients pattern pay "
    "peace pen people per percent perfect perform performance perhaps period person personal pet "
    "phone photo physical pick picture pie piece pl place placed places plan plans plant "
    "platform play played player players playing please point points pol police policies policy "
    "political politics poll poor pop popular population port position positive poss possible "
    "post posted pot potential power powerful practice predict prefer prep pres presence present "
    "president presidential press pressure pretty prevent previous previously price prices prim "
    "primary print prior prison private pro probably problem problems process produce produced "
    "product production products prof profess professional program programs progress project "
    "projects prom prop proper property protect protection provide provided provides providing "
    "psych pub public published pull pun purpose purposes pus push put quality quarter quest "
    "question questions quick quickly quite race raised ran random range rank rap rare rat rate "
    "rates rather re reach reached read reading ready real reality really reason reasons receive "
    "received recent recently recommend record records red reduce ref refer reference reflect "
    "reform regard region regular reject related relations relationship relative release "
    "released religious remain remains remember remove removed rep report reported reports "
    "represent republic republican republicans request require required requires research "
    "researchers resist resources resp respect respond response responsible rest restrict result "
    "results return returned rev revealed review rich right rights rise risk road rob rock role "
    "roll room round rout rule rules run running runs safe safety said sales same sand sat save "
    "saw say saying says scene school schools science score screen script search season sec "
    "second seconds secret secretary section security see seeing seem seemed seems seen select "
    "self sell senate send senior sense sent separate series serious serve served server service "
    "services set setting seven sever several sex sexual sh shall share shared she ship shoot "
    "shooting short shot should show showed showing shown shows shut side sign signed "
    "significant sim similar simple simply since sing single sit site situation six size skills "
    "skin sleep slight slightly slow small smaller smart smith so social society soft software "
    "sol sold solid solution some someone something sometimes son song soon sort sound source "
    "sources south space speak spec special species specific speech speed spell spend spending "
    "spent spirit spokes spot spread staff stage stand standard star start started starting "
    "starts stat state statement states station status stay step steps stick still stock stop "
    "store stories story straight strategy stream street strength string strong structure stud "
    "student students studies study stuff style sub subject success successful such sudden "
    "suggest sum summer sun super support supported supposed sure surface surround suspect "
    "system systems table take taken takes taking talk talking target task tax teach teacher "
    "team teams technology tell tells temper ten tend term terms terror test testing text than "
    "that the their them themselves then theory there therefore these they thing things think "
    "thinking third this those though thought thous thousands thread threat three through "
    "throughout throw thus tick time times title to today together told tom too took tool tools "
    "top tor tot total touch tour toward towards town track trade traditional traffic train "
    "training trans transfer transport travel treat treatment trial tried true truly trump trust "
    "truth try trying turn turned turns twitter two type types under understand understanding "
    "union unique unit united units university unless until up update upon us use used useful "
    "user users uses using usually valid value values var variety various vehicle version very "
    "via victim victims video view viol violence visit voice vol vote voters vs wait waiting "
    "walk wall want wanted wants war was watch watching water way ways we weak weapon weapons "
    "web webs website wed week weeks weight well went were west western what whatever when where "
    "whether which while white who whole whom whose why wide wife wild will willing win wind "
    "window windows wish with within without witness woman women won wonder wood word words work "
    "worked workers working works world worse worth would writ write writing written wrong wrote "
    "year years yes yet you young your yourself ";

const char* const kSubordinators =
    "that which who whom whose whether if unless because although though while whereas since "
    "until when whenever where wherever";

const char* const kPrepositions =
    "of in on at by for with from to into onto upon about above across after against along among "
    "around before behind below beneath beside between beyond during except inside near off "
    "outside over past through throughout toward towards under underneath within without via";

// Each list as a set, built on first use (thread-safe static initialisation, never destroyed).
using WordSet = std::unordered_set<std::string>;
const WordSet& common_words() {
  static const auto* set = new WordSet(make_set(kCommonWords));
  return *set;
}
const WordSet& subordinators() {
  static const auto* set = new WordSet(make_set(kSubordinators));
  return *set;
}
const WordSet& prepositions() {
  static const auto* set = new WordSet(make_set(kPrepositions));
  return *set;
}

// Whether `word` is in one of the generated lists of judges/pos_lexicon_data.h (sorted).
bool in_pos_lexicon(const char* const* list, size_t size, std::string_view word) {
  return std::binary_search(list, list + size, word,
                            [](std::string_view a, std::string_view b) { return a < b; });
}

bool in_adjectives_adverbs(std::string_view word) {
  return in_pos_lexicon(detail::kAdjectivesAdverbs, detail::kAdjectivesAdverbsCount, word);
}

// The base forms an -er/-est comparative or superlative may come from; the same rule
// tools/gen_pos_lexicon.py uses to find the words that must not take this path
// (detail::kNotComparatives). A stem of one letter is too short to tell ("her" is not "h" + er).
std::vector<std::string> pos_comparative_bases(const std::string& word) {
  std::vector<std::string> out;
  for (const std::string suffix : {"est", "er"}) {
    if (!ends_with(word, suffix) || word.size() < suffix.size() + 2) continue;
    const std::string stem = word.substr(0, word.size() - suffix.size());
    out.push_back(stem);        // smaller -> small
    out.push_back(stem + "e");  // nicer -> nice
    const char last = stem.back();
    if (last == 'i') out.push_back(stem.substr(0, stem.size() - 1) + "y");  // happier -> happy
    const bool doubled = stem.size() >= 3 && stem[stem.size() - 2] == last;
    if (doubled && std::string_view("aeiou").find(last) == std::string_view::npos)
      out.push_back(stem.substr(0, stem.size() - 1));  // biggest -> big
  }
  return out;
}

template <typename F>
double ratio_of_words(const std::string& text, F&& predicate) {
  const auto ws = words(text);
  if (ws.empty()) return 0.0;
  size_t n = 0;
  for (const auto& w : ws)
    n += predicate(w) ? 1 : 0;
  return static_cast<double>(n) / static_cast<double>(ws.size());
}

}  // namespace

std::vector<std::string> words(const std::string& text) {
  const auto cps = decode(text);
  return words_of(cps, 0, cps.size());
}

std::vector<std::string> sentences(const std::string& text) {
  const auto cps = decode(text);
  auto is_break = [&](size_t i) {
    const UChar32 c = cps[i];
    if (c == '\n' || c == '!' || c == '?') return true;
    if (c != '.') return false;
    const bool decimal =
        i > 0 && i + 1 < cps.size() && is_digit(cps[i - 1]) && is_digit(cps[i + 1]);
    return !decimal;
  };
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= cps.size(); ++i) {
    if (i < cps.size() && !is_break(i)) continue;
    if (!words_of(cps, start, i).empty()) out.push_back(encode(cps, start, i));
    start = i + 1;
  }
  return out;
}

size_t count_code_points(const std::string& text) {
  return decode(text).size();
}

size_t count_newlines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

double punctuation_ratio(const std::string& text) {
  size_t punct = 0, visible = 0;
  for (UChar32 c : decode(text)) {
    if (is_space(c)) continue;
    ++visible;
    punct += is_punct(c) ? 1 : 0;
  }
  return visible ? static_cast<double>(punct) / static_cast<double>(visible) : 0.0;
}

int count_syllables(const std::string& word) {
  std::string letters;
  for (char ch : word) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (ch >= 'a' && ch <= 'z') letters += ch;
  }
  auto vowel = [](char c) {
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
  };
  int count = 0;
  for (size_t i = 0; i < letters.size(); ++i)
    if (vowel(letters[i]) && (i == 0 || !vowel(letters[i - 1]))) ++count;
  const size_t n = letters.size();
  if (count > 1 && letters.back() == 'e') {
    const bool consonant_le = n >= 3 && letters[n - 2] == 'l' && !vowel(letters[n - 3]);
    if (!consonant_le) --count;
  }
  return std::max(count, 1);
}

double flesch_reading_ease(const std::string& text) {
  const auto ws = words(text);
  if (ws.empty()) return 0.0;
  const double n_sentences = static_cast<double>(std::max<size_t>(sentences(text).size(), 1));
  double syllables = 0;
  for (const auto& w : ws)
    syllables += count_syllables(w);
  const double n_words = static_cast<double>(ws.size());
  return 206.835 - 1.015 * (n_words / n_sentences) - 84.6 * (syllables / n_words);
}

double mean_word_length(const std::string& text) {
  const auto ws = words(text);
  if (ws.empty()) return 0.0;
  size_t total = 0;
  for (const auto& w : ws)
    total += count_code_points(w);
  return static_cast<double>(total) / static_cast<double>(ws.size());
}

size_t levenshtein_distance(const std::string& a, const std::string& b) {
  const auto x = decode(a), y = decode(b);
  std::vector<size_t> previous(y.size() + 1), current(y.size() + 1);
  for (size_t j = 0; j <= y.size(); ++j)
    previous[j] = j;
  for (size_t i = 1; i <= x.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= y.size(); ++j) {
      const size_t substitute = previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[y.size()];
}

double levenshtein_similarity(const std::string& a, const std::string& b) {
  const size_t longest = std::max(count_code_points(a), count_code_points(b));
  if (longest == 0) return 1.0;
  return 1.0 - static_cast<double>(levenshtein_distance(a, b)) / static_cast<double>(longest);
}

std::string lookup_form(const std::string& word) {
  auto cps = decode(word);
  size_t end = cps.size();
  for (size_t i = 0; i < cps.size(); ++i) {
    if (cps[i] == '\'' || cps[i] == 0x2019) {
      end = i;
      break;
    }
    cps[i] = u_tolower(cps[i]);
  }
  return encode(cps, 0, end);
}

bool is_common_word(const std::string& word) {
  return common_words().count(lookup_form(word)) > 0;
}

double common_word_ratio(const std::string& text) {
  return ratio_of_words(text, is_common_word);
}

double lowercase_ratio(const std::string& text) {
  size_t letters = 0, lower = 0;
  for (UChar32 c : decode(text)) {
    if (!u_isalpha(c)) continue;
    ++letters;
    lower += u_islower(c) ? 1 : 0;
  }
  return letters ? static_cast<double>(lower) / static_cast<double>(letters) : 0.0;
}

bool is_adjective_or_adverb(const std::string& word) {
  const std::string w = lookup_form(word);
  if (in_adjectives_adverbs(w)) return true;
  if (in_pos_lexicon(detail::kNotComparatives, detail::kNotComparativesCount, w)) return false;
  for (const auto& base : pos_comparative_bases(w))
    if (in_adjectives_adverbs(base)) return true;
  return false;
}

double adjective_adverb_ratio(const std::string& text) {
  return ratio_of_words(text, is_adjective_or_adverb);
}

int dependency_depth_estimate(const std::string& sentence) {
  const auto ws = words(sentence);
  if (ws.empty()) return 0;
  int depth = static_cast<int>(std::min<size_t>(ws.size(), 3));
  for (const auto& w : ws) {
    const std::string form = lookup_form(w);
    if (subordinators().count(form))
      depth += 2;
    else if (prepositions().count(form))
      depth += 1;
  }
  int nesting = 0, deepest = 0;
  for (char c : sentence) {
    if (c == '(' || c == '[' || c == '{') deepest = std::max(deepest, ++nesting);
    if ((c == ')' || c == ']' || c == '}') && nesting > 0) --nesting;
  }
  return depth + deepest;
}

int max_dependency_depth(const std::string& text) {
  int deepest = 0;
  for (const auto& s : sentences(text))
    deepest = std::max(deepest, dependency_depth_estimate(s));
  return deepest;
}

}  // namespace tailor::judges

#!/usr/bin/env python3
"""Regenerates the part-of-speech lexicon of the `adjectives` oracle (deterministic; stdlib only)
from WordNet 3.0 as Debian's wordnet-base installs it (apt-get install wordnet-base):

  assets/lexicons/adjectives_adverbs.txt  words whose dominant part of speech is adjective/adverb
  assets/lexicons/not_comparatives.txt    other WordNet words the -er/-est fallback would misread
  assets/lexicons/WORDNET_LICENSE         WordNet 3.0's license (it must travel with its data)
  judges/pos_lexicon_data.cpp             both lists as sorted C++ arrays, compiled into tailor

    python3 tools/gen_pos_lexicon.py [--wordnet DIR] [--copyright FILE]

The rule (assets/lexicons/README.md says the same):
- Words: the lemmas of index.adj, index.adv, index.noun and index.verb that match
  [a-z]+(-[a-z]+)*: one token of tailor's words() (no '_' multiword entries, no digits, no
  apostrophes or dots, which lookup_form() and words() cut or strip anyway).
- Each (lemma, part of speech) line gives a key (tagsense_cnt, synset_cnt): how many of its
  senses were tagged in the SemCor corpus (were seen used that way), then how many senses it has.
  A word is an adjective/adverb when its best key among adjective and adverb is strictly greater
  (compared as a pair) than its best key among noun and verb; so a tie goes to noun/verb.
- not_comparatives: the words of WordNet (rule above) that are not adjectives/adverbs, whose
  -er/-est fallback (comparative_bases below; pos_comparative_bases in judges/text_features.cpp)
  would reach one, and that SemCor saw used as a noun or verb (tagsense_cnt > 0 in index.noun or
  index.verb): "number" (-> "numb"), "offer" (-> "off"), "lower", "cooler", "stranger". tailor
  looks them up before the fallback. The ones SemCor never saw as a noun or verb ("warmer",
  "lighter", "thinner": WordNet lists a device) are left to the fallback, so they count as
  comparatives, their usual reading.
"""
import argparse
import os
import re
import sys

POS_FILES = (("adj", "a"), ("adv", "r"), ("noun", "n"), ("verb", "v"))
LEMMA = re.compile(r"[a-z]+(-[a-z]+)*")
VOWELS = "aeiou"


def comparative_bases(word):
    """The base forms tried for a word the lexicon lacks; keep in step with
    pos_comparative_bases() in judges/text_features.cpp."""
    out = []
    for suffix in ("est", "er"):
        stem = word[: -len(suffix)]
        if not word.endswith(suffix) or len(stem) < 2:
            continue
        out.append(stem)  # smaller -> small
        out.append(stem + "e")  # nicer -> nice
        if stem.endswith("i"):
            out.append(stem[:-1] + "y")  # happier -> happy
        if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in VOWELS:
            out.append(stem[:-1])  # bigger -> big
    return out


def read_index(path, pos):
    """{lemma: (tagsense_cnt, synset_cnt)} of one index file, checking each line's layout."""
    keys = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("  "):  # the license header
                continue
            fields = line.split()
            where = "%s:%d" % (path, number)
            if len(fields) < 6 or fields[1] != pos:
                sys.exit("%s: not an index line of part of speech %s" % (where, pos))
            synset_cnt, p_cnt = int(fields[2]), int(fields[3])
            rest = fields[4 + p_cnt :]
            if len(rest) < 2:
                sys.exit("%s: too few fields after %d pointer symbols" % (where, p_cnt))
            sense_cnt, tagsense_cnt = int(rest[0]), int(rest[1])
            offsets = rest[2:]
            if sense_cnt != synset_cnt or len(offsets) != synset_cnt:
                sys.exit("%s: synset_cnt %d, sense_cnt %d, %d offsets"
                         % (where, synset_cnt, sense_cnt, len(offsets)))
            lemma = fields[0]
            if lemma in keys:
                sys.exit("%s: %s listed twice" % (where, lemma))
            keys[lemma] = (tagsense_cnt, synset_cnt)
    return keys


def license_text(copyright_path):
    """The WordNet3.0 paragraph of a Debian copyright file, unindented."""
    lines, inside = [], False
    with open(copyright_path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("License: WordNet3.0"):
                inside = True
                continue
            if inside:
                if not line.startswith(" "):
                    break
                body = line[1:].rstrip()
                lines.append("" if body == "." else body)
    if not lines:
        sys.exit("%s: no 'License: WordNet3.0' paragraph" % copyright_path)
    return "\n".join(lines) + "\n"


def cpp_array(name, words):
    body = "".join('    "%s",\n' % w for w in words)
    return ("const char* const %s[] = {\n%s};\n"
            "const size_t %sCount = sizeof(%s) / sizeof(%s[0]);\n"
            % (name, body, name, name, name))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet")
    parser.add_argument("--copyright", default="/usr/share/doc/wordnet-base/copyright")
    args = parser.parse_args()

    index = {name: read_index(os.path.join(args.wordnet, "index." + name), pos)
             for name, pos in POS_FILES}
    missing = (-1, -1)  # below every real key
    lemmas = sorted({w for keys in index.values() for w in keys if LEMMA.fullmatch(w)})
    lexicon, dominant = [], {"adj": 0, "adv": 0}
    for w in lemmas:
        best = {name: index[name].get(w, missing) for name, _ in POS_FILES}
        described = max(best["adj"], best["adv"])
        if described > max(best["noun"], best["verb"]):
            lexicon.append(w)
            dominant["adj" if best["adj"] >= best["adv"] else "adv"] += 1
    in_lexicon = set(lexicon)
    def seen_as_noun_or_verb(w):
        return max(index["noun"].get(w, missing)[0], index["verb"].get(w, missing)[0]) > 0

    not_comparatives = [w for w in lemmas if w not in in_lexicon and seen_as_noun_or_verb(w) and
                        any(b in in_lexicon for b in comparative_bases(w))]

    def write(relative, text):
        with open(os.path.join(root, relative), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)

    os.makedirs(os.path.join(root, "assets", "lexicons"), exist_ok=True)
    write("assets/lexicons/adjectives_adverbs.txt", "".join(w + "\n" for w in lexicon))
    write("assets/lexicons/not_comparatives.txt", "".join(w + "\n" for w in not_comparatives))
    write("assets/lexicons/WORDNET_LICENSE", license_text(args.copyright))
    write("judges/pos_lexicon_data.cpp",
          "// generated by tools/gen_pos_lexicon.py; do not edit.\n"
          "// WordNet 3.0 data, under its license: assets/lexicons/WORDNET_LICENSE.\n"
          "// Sorted (byte order), for std::binary_search; see assets/lexicons/README.md.\n"
          "#include \"judges/pos_lexicon_data.h\"\n\n"
          "// One word a line, as written here, so that a regenerated list diffs by word.\n"
          "// clang-format off\n"
          "namespace tailor::judges::detail {\n\n"
          + cpp_array("kAdjectivesAdverbs", lexicon) + "\n"
          + cpp_array("kNotComparatives", not_comparatives) + "\n"
          "}  // namespace tailor::judges::detail\n"
          "// clang-format on\n")

    print("WordNet words matching [a-z]+(-[a-z]+)*: %d" % len(lemmas))
    for name, _ in POS_FILES:
        print("  in index.%s: %d" % (name, sum(1 for w in lemmas if w in index[name])))
    print("adjectives_adverbs.txt: %d (%d adjective-dominant, %d adverb-dominant; "
          "adjective on an adjective/adverb tie)" % (len(lexicon), dominant["adj"],
                                                     dominant["adv"]))
    print("not_comparatives.txt: %d" % len(not_comparatives))


if __name__ == "__main__":
    main()

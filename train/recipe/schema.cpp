#include "train/recipe/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/fnv1a.h"

namespace tailor {
namespace {

std::string join_path(const std::string& section, const std::string& name) {
  return section.empty() ? name : section + "." + name;
}

std::string parent_of(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

std::string leaf_of(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i ? sep : "") + items[i];
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// "a.b=value" -> ("a.b", "value"); nullopt without '=' or without a key.
std::optional<std::pair<std::string, std::string>> parse_override(const std::string& arg) {
  const auto eq = arg.find('=');
  if (eq == std::string::npos) return std::nullopt;
  std::string key = trim(arg.substr(0, eq));
  if (key.empty()) return std::nullopt;
  return std::make_pair(key, arg.substr(eq + 1));
}

// A string as a double-quoted YAML (and JSON) scalar.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

const std::regex& int_pattern() {
  static const std::regex re(R"([-+]?[0-9]+)");
  return re;
}
const std::regex& float_pattern() {
  static const std::regex re(R"([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  return re;
}

// Words that YAML readers other than ours would not read as a plain string.
bool looks_special(const std::string& s) {
  std::string lower;
  for (char c : s)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::set<std::string> words = {"true", "false", "yes", "no", "on",
                                              "off",  "null",  "~",   "y",  "n"};
  return words.count(lower) || std::regex_match(s, float_pattern()) || lower == ".inf" ||
         lower == "-.inf" || lower == ".nan";
}

// A string as YAML: plain when that is unambiguous (paths, names), double-quoted otherwise.
std::string yaml_string(const std::string& s) {
  if (s.empty() || looks_special(s)) return quoted(s);
  const unsigned char first = s[0];
  if (!(std::isalnum(first) || first == '_' || first == '.' || first == '/')) return quoted(s);
  for (unsigned char c : s)
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-')) return quoted(s);
  return s;
}

std::string format_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return format_float(v);
}

std::string format_value(const Value& value) {
  struct {
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_float(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return yaml_string(v); }
    std::string operator()(const std::vector<std::string>& v) const {
      std::vector<std::string> items;
      for (const auto& s : v)
        items.push_back(yaml_string(s));
      return "[" + join(items, ", ") + "]";
    }
    std::string operator()(const std::vector<double>& v) const {
      std::vector<std::string> items;
      for (double d : v)
        items.push_back(format_float(d));
      return "[" + join(items, ", ") + "]";
    }
    std::string operator()(const WeightTable& v) const {
      std::vector<std::string> rows;
      for (const auto& [name, weights] : v) {
        std::vector<std::string> items;
        for (const auto& [weight, w] : weights)
          items.push_back(yaml_string(weight) + ": " + format_float(w));
        rows.push_back(yaml_string(name) + ": {" + join(items, ", ") + "}");
      }
      return "{" + join(rows, ", ") + "}";
    }
    std::string operator()(const StringTable& v) const {
      std::vector<std::string> rows;
      for (const auto& [name, fields] : v) {
        std::vector<std::string> items;
        for (const auto& [field, text] : fields)
          items.push_back(yaml_string(field) + ": " + yaml_string(text));
        rows.push_back(yaml_string(name) + ": {" + join(items, ", ") + "}");
      }
      return "{" + join(rows, ", ") + "}";
    }
  } visitor;
  return std::visit(visitor, value);
}

// " > 0", " >= 1", " in [0, 1)", or "".
std::string range_text(const KeySpec& key) {
  if (key.lower && key.upper) {
    return " in " + std::string(key.lower->inclusive ? "[" : "(") +
           format_number(key.lower->value) + ", " + format_number(key.upper->value) +
           (key.upper->inclusive ? "]" : ")");
  }
  if (key.lower) return (key.lower->inclusive ? " >= " : " > ") + format_number(key.lower->value);
  if (key.upper) return (key.upper->inclusive ? " <= " : " < ") + format_number(key.upper->value);
  return "";
}

// What a value of `key` must look like, for "expected ..." messages.
std::string expectation(const KeySpec& key) {
  switch (key.kind) {
    case ValueKind::kInt:
      return "an integer" + range_text(key);
    case ValueKind::kFloat:
      return "a number" + range_text(key);
    case ValueKind::kBool:
      return "true or false";
    case ValueKind::kString:
      return key.required ? "a non-empty string" : "a string";
    case ValueKind::kPath:
      return key.required ? "a non-empty path" : "a path";
    case ValueKind::kEnum:
      return "one of " + join(key.choices, ", ");
    case ValueKind::kStringList:
      return "a list of strings like [a, b]";
    case ValueKind::kFloatList:
      return "a list of numbers like [0.5, 1.0]" +
             (range_text(key).empty() ? "" : ", each" + range_text(key));
    case ValueKind::kWeightTable:
      return "a mapping of names to mappings of names to numbers like {alice: {shorter_length: "
             "1.0}}" +
             (range_text(key).empty() ? "" : ", each weight" + range_text(key));
    case ValueKind::kStringTable:
      return "a mapping of names to mappings of names to strings like {carol: {model: "
             "runs/rm/export}}";
  }
  return "";
}

// How a YAML node looks, for "got ..." messages.
std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return (node.Tag() == "?" ? "" : "the string ") + quoted(node.Scalar());
}

bool in_range(const KeySpec& key, double v) {
  if (key.lower && (key.lower->inclusive ? v < key.lower->value : v <= key.lower->value))
    return false;
  if (key.upper && (key.upper->inclusive ? v > key.upper->value : v >= key.upper->value))
    return false;
  return true;
}

// Checks a typed value against the key's range, choices and non-emptiness. Returns the problem.
std::optional<std::string> check_value(const KeySpec& key, const Value& value) {
  const std::string expected = "expected " + expectation(key) + ", got ";
  switch (key.kind) {
    case ValueKind::kInt: {
      const int64_t v = std::get<int64_t>(value);
      if (!in_range(key, static_cast<double>(v))) return expected + std::to_string(v);
      break;
    }
    case ValueKind::kFloat: {
      const double v = std::get<double>(value);
      if (!std::isfinite(v) || !in_range(key, v)) return expected + format_float(v);
      break;
    }
    case ValueKind::kFloatList:
      for (double v : std::get<std::vector<double>>(value))
        if (!std::isfinite(v) || !in_range(key, v)) return expected + format_value(value);
      break;
    case ValueKind::kWeightTable:
      for (const auto& [name, weights] : std::get<WeightTable>(value)) {
        if (name.empty() || weights.empty()) return expected + format_value(value);
        for (const auto& [weight, v] : weights)
          if (weight.empty() || !std::isfinite(v) || !in_range(key, v))
            return expected + format_value(value);
      }
      break;
    case ValueKind::kStringTable:
      for (const auto& [name, fields] : std::get<StringTable>(value)) {
        if (name.empty() || fields.empty()) return expected + format_value(value);
        for (const auto& [field, text] : fields)
          if (field.empty()) return expected + format_value(value);
      }
      break;
    case ValueKind::kEnum: {
      const auto& s = std::get<std::string>(value);
      if (std::find(key.choices.begin(), key.choices.end(), s) == key.choices.end()) {
        const std::string close = closest_match(s, key.choices);
        return expected + quoted(s) + (close.empty() ? "" : "; did you mean '" + close + "'?");
      }
      break;
    }
    case ValueKind::kString:
    case ValueKind::kPath:
      if (key.required && std::get<std::string>(value).empty()) return expected + "\"\"";
      break;
    case ValueKind::kBool:
    case ValueKind::kStringList:
      break;
  }
  return std::nullopt;
}

bool parse_int(const YAML::Node& node, int64_t* out) {
  if (!node.IsScalar() || node.Tag() != "?" || !std::regex_match(node.Scalar(), int_pattern()))
    return false;
  errno = 0;
  *out = std::strtoll(node.Scalar().c_str(), nullptr, 10);
  return errno != ERANGE;
}

bool parse_float(const YAML::Node& node, double* out) {
  if (!node.IsScalar() || node.Tag() != "?" || !std::regex_match(node.Scalar(), float_pattern()))
    return false;
  *out = std::strtod(node.Scalar().c_str(), nullptr);
  return std::isfinite(*out);
}

// Why a YAML value does not convert to its key's type: `message`, about the part `subpath` of the
// value (".bob.new_lines" inside a table, "" for the whole value), found on `line` (1-based; 0 for
// the line of the key).
struct Problem {
  std::string message;
  std::string subpath;
  int line = 0;
};

int line_of(const YAML::Node& node) {
  return node.Mark().is_null() ? 0 : node.Mark().line + 1;
}

// A name in a kWeightTable or kStringTable: a non-empty scalar. On failure sets *problem (about
// `subpath`).
std::optional<std::string> table_name(const YAML::Node& node, const std::string& subpath,
                                      Problem* problem) {
  if (node.IsScalar() && !node.Scalar().empty()) return node.Scalar();
  *problem = {"expected a non-empty name, got " + (node.IsScalar() ? "\"\"" : describe(node)),
              subpath, line_of(node)};
  return std::nullopt;
}

// A table of named rows of named cells from a YAML mapping (checked by the caller): every row a
// non-empty mapping (`row_expectation` says of what), every cell converted by `cell`, which
// returns nullopt and sets its message when the cell is wrong. Names the first wrong name, cell
// or duplicate by its path inside the table.
template <class Cell, class ConvertCell>
std::optional<std::map<std::string, std::map<std::string, Cell>>> convert_table(
    const YAML::Node& node, const std::string& row_expectation, ConvertCell cell,
    Problem* problem) {
  std::map<std::string, std::map<std::string, Cell>> table;
  for (const auto& row : node) {
    const auto name = table_name(row.first, "", problem);
    if (!name) return std::nullopt;
    const std::string row_path = "." + *name;
    if (table.count(*name)) {
      *problem = {"duplicate key", row_path, line_of(row.first)};
      return std::nullopt;
    }
    const YAML::Node& cells = row.second;
    if (!cells.IsMap() || cells.size() == 0) {
      *problem = {"expected a non-empty mapping of " + row_expectation + ", got " +
                      (cells.IsMap() ? std::string("an empty mapping") : describe(cells)),
                  row_path, line_of(row.first)};
      return std::nullopt;
    }
    auto& out = table[*name];
    for (const auto& entry : cells) {
      const auto cell_name = table_name(entry.first, row_path, problem);
      if (!cell_name) return std::nullopt;
      const std::string cell_path = row_path + "." + *cell_name;
      if (out.count(*cell_name)) {
        *problem = {"duplicate key", cell_path, line_of(entry.first)};
        return std::nullopt;
      }
      std::string message;
      std::optional<Cell> value = cell(entry.second, &message);
      if (!value) {
        *problem = {message, cell_path, line_of(entry.first)};
        return std::nullopt;
      }
      out[*cell_name] = std::move(*value);
    }
  }
  return table;
}

// A kWeightTable: each weight read like a kFloat, within the key's bounds.
std::optional<WeightTable> convert_weight_table(const KeySpec& key, const YAML::Node& node,
                                                Problem* problem) {
  const auto weight = [&key](const YAML::Node& cell,
                             std::string* message) -> std::optional<double> {
    double v;
    const bool is_number = parse_float(cell, &v);
    if (is_number && in_range(key, v)) return v;
    *message = "expected a number" + range_text(key) + ", got " +
               (is_number ? format_float(v) : describe(cell));
    return std::nullopt;
  };
  return convert_table<double>(node, "names to numbers like {shorter_length: 1.0}", weight,
                               problem);
}

// A kStringTable: each value any scalar, read as a string.
std::optional<StringTable> convert_string_table(const YAML::Node& node, Problem* problem) {
  const auto text = [](const YAML::Node& cell, std::string* message) -> std::optional<std::string> {
    if (cell.IsScalar()) return cell.Scalar();
    *message = "expected a string, got " + describe(cell);
    return std::nullopt;
  };
  return convert_table<std::string>(node, "names to strings like {model: runs/rm/export}", text,
                                    problem);
}

// Converts a YAML node to the key's type and checks it. On failure sets *problem.
std::optional<Value> convert(const KeySpec& key, const YAML::Node& node, Problem* problem) {
  const std::string mismatch = "expected " + expectation(key) + ", got " + describe(node);
  std::optional<Value> value;
  switch (key.kind) {
    case ValueKind::kInt: {
      int64_t v;
      if (parse_int(node, &v)) value = v;
      break;
    }
    case ValueKind::kFloat: {
      double v;
      if (parse_float(node, &v)) value = v;
      break;
    }
    case ValueKind::kBool: {
      static const std::set<std::string> yes = {"true", "True", "TRUE"};
      static const std::set<std::string> no = {"false", "False", "FALSE"};
      if (node.IsScalar() && node.Tag() == "?") {
        if (yes.count(node.Scalar())) value = true;
        if (no.count(node.Scalar())) value = false;
      }
      break;
    }
    case ValueKind::kString:
    case ValueKind::kPath:
    case ValueKind::kEnum:
      // An empty value (`key:` in a file, `key=` on the command line) is the empty string.
      if (node.IsNull()) value = std::string();
      if (node.IsScalar()) value = node.Scalar();
      break;
    case ValueKind::kStringList:
      if (node.IsSequence()) {
        std::vector<std::string> items;
        for (const auto& item : node) {
          if (!item.IsScalar()) {
            *problem = Problem{mismatch + " with an element that is " + describe(item), "", 0};
            return std::nullopt;
          }
          items.push_back(item.Scalar());
        }
        value = items;
      }
      break;
    case ValueKind::kFloatList:
      if (node.IsSequence()) {
        std::vector<double> items;
        for (const auto& item : node) {
          double v;
          if (!parse_float(item, &v)) {
            *problem = Problem{mismatch + " with an element that is " + describe(item), "", 0};
            return std::nullopt;
          }
          items.push_back(v);
        }
        value = items;
      }
      break;
    case ValueKind::kWeightTable:
      if (node.IsMap()) {
        auto table = convert_weight_table(key, node, problem);
        if (!table) return std::nullopt;
        value = std::move(*table);
      }
      break;
    case ValueKind::kStringTable:
      if (node.IsMap()) {
        auto table = convert_string_table(node, problem);
        if (!table) return std::nullopt;
        value = std::move(*table);
      }
      break;
  }
  if (!value) {
    *problem = Problem{mismatch, "", 0};
    return std::nullopt;
  }
  if (auto bad = check_value(key, *value)) {
    *problem = Problem{*bad, "", 0};
    return std::nullopt;
  }
  return value;
}

std::string kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::kInt:
      return "int";
    case ValueKind::kFloat:
      return "float";
    case ValueKind::kBool:
      return "bool";
    case ValueKind::kString:
      return "string";
    case ValueKind::kPath:
      return "path";
    case ValueKind::kEnum:
      return "enum";
    case ValueKind::kStringList:
      return "list of strings";
    case ValueKind::kFloatList:
      return "list of floats";
    case ValueKind::kWeightTable:
      return "table of weights";
    case ValueKind::kStringTable:
      return "table of strings";
  }
  return "";
}

// Parses a recipe file's text: a mapping at the top level, or nothing.
YAML::Node load_document(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error("recipe",
                source + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (!root.IsNull() && !root.IsMap()) {
    throw Error("recipe", source + ": expected a mapping of recipe keys (key: value lines), got " +
                              describe(root));
  }
  return root;
}

// A recipe's `base` (the recipe it builds on): the file, found relative to the folder of the
// recipe that names it, and where it was named. nullopt when the document has no `base` key.
struct BaseRecipe {
  std::filesystem::path file;
  std::string where;  // "recipes/rm_synth_vae.yaml:1"
};

std::optional<BaseRecipe> base_of(const YAML::Node& root, const std::string& source) {
  for (const auto& entry : root) {
    if (!entry.first.IsScalar() || entry.first.Scalar() != kBaseRecipeKey) continue;
    const std::string where = source + ":" + std::to_string(entry.first.Mark().line + 1);
    const YAML::Node& value = entry.second;
    if (!value.IsScalar() || value.Scalar().empty())
      throw Error("recipe", where + ": " + kBaseRecipeKey +
                                ": expected the file name of a recipe to build on, got " +
                                describe(value));
    return BaseRecipe{std::filesystem::path(source).parent_path() / value.Scalar(), where};
  }
  return std::nullopt;
}

// The text of `base`, refusing a missing file and a recipe that builds on itself through
// `chain` (the files read so far, the first one outermost).
std::string read_base(const BaseRecipe& base, const std::vector<std::string>& chain) {
  namespace fs = std::filesystem;
  if (!fs::is_regular_file(base.file))
    throw Error("recipe", base.where + ": " + kBaseRecipeKey +
                              ": file not found: " + base.file.string() +
                              " (a base recipe is found relative to the folder of the recipe that "
                              "names it)");
  const std::string id = fs::weakly_canonical(base.file).string();
  for (const auto& seen : chain) {
    if (fs::weakly_canonical(seen).string() != id) continue;
    std::string cycle;
    for (const auto& file : chain)
      cycle += file + " -> ";
    throw Error("recipe", base.where + ": " + kBaseRecipeKey + ": " + base.file.string() +
                              " builds on itself: " + cycle + base.file.string());
  }
  return read_file(base.file);
}

// Validates a recipe document and overrides into a ResolvedConfig, collecting every problem.
class Resolver {
 public:
  Resolver(const SchemaSpec& schema, const std::string& source,
           const std::vector<std::string>& overrides)
      : schema_(schema), source_(source), config_(schema, source) {
    // An overridden key's value in the file is replaced, so it is not validated: an override
    // can fix a bad value (unknown keys and duplicates in the file are still errors).
    for (const auto& arg : overrides)
      if (auto parts = parse_override(arg)) overridden_.insert(parts->first);
  }

  // A recipe file and, first, the chain of recipes it builds on: a key set by a recipe replaces
  // the value its base gave (sections merge key by key; a list or table is one value).
  void read_document(const std::string& text) { read_document(text, source_, {}); }

  void read_document(const std::string& text, const std::string& source,
                     std::vector<std::string> chain) {
    const YAML::Node root = load_document(text, source);
    if (root.IsNull()) return;  // an empty file: only defaults (required keys will be missing)
    chain.push_back(source);
    if (const auto base = base_of(root, source))
      read_document(read_base(*base, chain), base->file.string(), chain);
    walk(root, "", source);
  }

  void apply_override(const std::string& arg) {
    const std::string label = "override '" + arg + "'";
    const auto parts = parse_override(arg);
    if (!parts) {
      problems_.push_back(label + ": expected KEY=VALUE, e.g. train.max_steps=10");
      return;
    }
    const std::string& path = parts->first;
    if (schema_.is_section(path)) {
      problems_.push_back(label + ": " + path + ": is a section; override one of its keys, e.g. " +
                          join_path(path, schema_.children(path).front()) + "=...");
      return;
    }
    const KeySpec* key = schema_.find_key(path);
    if (!key) {
      problems_.push_back(label + ": " + path + ": unknown key" +
                          suggestion(path, /*full_path=*/true));
      return;
    }
    YAML::Node node;
    try {
      node = YAML::Load(parts->second);
    } catch (const YAML::Exception& e) {
      problems_.push_back(label + ": " + path + ": value is not valid YAML: " + e.msg);
      return;
    }
    Problem problem;
    if (auto value = convert(*key, node, &problem)) {
      config_.set(path, *value, label);  // later overrides win over earlier ones and the file
      set_.insert(path);
    } else {
      problems_.push_back(label + ": " + path + problem.subpath + ": " + problem.message);
    }
  }

  ResolvedConfig finish() {
    for (const KeySpec& key : schema_.keys()) {
      if (config_has(key.path)) continue;
      if (key.required) {
        const auto line = section_lines_.find(parent_of(key.path));
        const std::string where =
            source_ + (line == section_lines_.end() ? "" : ":" + std::to_string(line->second));
        problems_.push_back(where + ": " + key.path + ": missing required key (" + key.doc + ")");
      } else {
        config_.set(key.path, *key.default_value, "");
      }
    }
    if (!problems_.empty()) throw Error("recipe", join(problems_, "\n[recipe] "));
    return config_;
  }

 private:
  bool config_has(const std::string& path) const { return set_.count(path) > 0; }

  void walk(const YAML::Node& map, const std::string& section, const std::string& source) {
    std::map<std::string, int> seen;  // key -> line
    for (const auto& entry : map) {   // a key/value pair held by value for the loop body
      const YAML::Node& k = entry.first;
      const YAML::Node& v = entry.second;
      const int line = k.Mark().is_null() ? 0 : k.Mark().line + 1;
      const std::string where = source + (line ? ":" + std::to_string(line) : "");
      if (!k.IsScalar()) {
        problems_.push_back(where + ": " + (section.empty() ? "(top level)" : section) +
                            ": expected a key name, got " + describe(k));
        continue;
      }
      const std::string path = join_path(section, k.Scalar());
      if (path == kBaseRecipeKey) continue;  // read before this document (read_document)
      if (auto first = seen.find(k.Scalar()); first != seen.end()) {
        problems_.push_back(where + ": " + path + ": duplicate key (first set on line " +
                            std::to_string(first->second) + ")");
        continue;
      }
      seen[k.Scalar()] = line;
      if (schema_.is_section(path)) {
        section_lines_[path] = line;
        if (v.IsMap()) {
          walk(v, path, source);
        } else if (!v.IsNull()) {  // `lora:` with nothing under it is an empty section
          problems_.push_back(where + ": " + path + ": expected a section with keys " +
                              join(schema_.children(path), ", ") + ", got " + describe(v));
        }
      } else if (const KeySpec* key = schema_.find_key(path)) {
        if (overridden_.count(path)) continue;
        Problem problem;
        if (auto value = convert(*key, v, &problem)) {
          config_.set(path, *value, where);
          set_.insert(path);
        } else {
          // A mistake inside a table is named by its own line ("users.bob.new_lines").
          const std::string at = problem.line ? source + ":" + std::to_string(problem.line) : where;
          problems_.push_back(at + ": " + path + problem.subpath + ": " + problem.message);
        }
      } else {
        problems_.push_back(where + ": " + path + ": unknown key" +
                            suggestion(path, /*full_path=*/false));
      }
    }
  }

  // "; did you mean 'weight_decay'?" for a near miss in the same section, "; did you mean
  // 'optimizer.lr'?" for a key placed in the wrong section, otherwise the keys allowed here.
  // Overrides get the full path to retype; a file gets the name to fix in place.
  std::string suggestion(const std::string& path, bool full_path) const {
    const std::string section = parent_of(path), name = leaf_of(path);
    if (!section.empty() && !schema_.is_section(section)) {
      const std::string close = closest_match(section, schema_.sections());
      if (!close.empty()) return "; did you mean '" + join_path(close, name) + "'?";
      return "; '" + section + "' is not a section";
    }
    const auto siblings = schema_.children(section);
    const std::string close = closest_match(name, siblings);
    if (!close.empty())
      return "; did you mean '" + (full_path ? join_path(section, close) : close) + "'?";
    for (const KeySpec& key : schema_.keys())
      if (leaf_of(key.path) == name) return "; did you mean '" + key.path + "'?";
    return "; expected one of: " + join(siblings, ", ");
  }

  const SchemaSpec& schema_;
  std::string source_;
  ResolvedConfig config_;
  std::set<std::string> set_;
  std::set<std::string> overridden_;
  std::map<std::string, int> section_lines_;
  std::vector<std::string> problems_;
};

}  // namespace

std::string KeySpec::type_description() const {
  if (kind == ValueKind::kEnum) return "one of " + join(choices, "|");
  return kind_name(kind) + range_text(*this);
}

void SchemaSpec::add_section(const std::string& path, const std::string& doc) {
  if (is_section(path) || find_key(path)) throw std::logic_error("schema: duplicate " + path);
  if (!parent_of(path).empty() && !is_section(parent_of(path)))
    throw std::logic_error("schema: section " + path + " declared before its parent");
  entries_.push_back({path, true});
  section_docs_[path] = doc;
}

void SchemaSpec::add_key(KeySpec key) {
  if (is_section(key.path) || find_key(key.path))
    throw std::logic_error("schema: duplicate " + key.path);
  if (!parent_of(key.path).empty() && !is_section(parent_of(key.path)))
    throw std::logic_error("schema: key " + key.path + " declared before its section");
  entries_.push_back({key.path, false});
  keys_.push_back(std::move(key));
}

const KeySpec* SchemaSpec::find_key(const std::string& path) const {
  for (const auto& key : keys_)
    if (key.path == path) return &key;
  return nullptr;
}

KeySpec& SchemaSpec::key(const std::string& path) {
  for (auto& key : keys_)
    if (key.path == path) return key;
  throw std::logic_error("schema: no key " + path);
}

bool SchemaSpec::is_section(const std::string& path) const {
  return section_docs_.count(path) > 0;
}

const std::string& SchemaSpec::section_doc(const std::string& path) const {
  return section_docs_.at(path);
}

std::vector<std::string> SchemaSpec::sections() const {
  std::vector<std::string> paths;
  for (const auto& e : entries_)
    if (e.is_section) paths.push_back(e.path);
  return paths;
}

std::vector<std::string> SchemaSpec::children(const std::string& section) const {
  std::vector<std::string> names;
  for (const auto& e : entries_)
    if (parent_of(e.path) == section) names.push_back(leaf_of(e.path));
  return names;
}

void SchemaSpec::check_complete() const {
  for (const auto& [path, doc] : section_docs_)
    if (doc.empty()) throw std::logic_error("schema: section " + path + " has no doc");
  for (const auto& key : keys_) {
    if (key.doc.empty()) throw std::logic_error("schema: " + key.path + " has no doc");
    if (key.required == key.default_value.has_value())
      throw std::logic_error("schema: " + key.path + " needs exactly one of default or required");
    if (key.default_value) {
      if (auto bad = check_value(key, *key.default_value))
        throw std::logic_error("schema: default of " + key.path + ": " + *bad);
    }
  }
}

std::string SchemaSpec::reference() const {
  size_t path_width = 0, type_width = 0, default_width = 0;
  std::vector<std::array<std::string, 4>> rows;
  for (const auto& key : keys_) {
    rows.push_back({key.path, key.type_description(),
                    key.required ? "(required)" : format_value(*key.default_value), key.doc});
    path_width = std::max(path_width, rows.back()[0].size());
    type_width = std::max(type_width, rows.back()[1].size());
    default_width = std::max(default_width, rows.back()[2].size());
  }
  std::ostringstream out;
  for (const auto& r : rows) {
    out << "  " << r[0] << std::string(path_width - r[0].size() + 2, ' ') << r[1]
        << std::string(type_width - r[1].size() + 2, ' ') << r[2]
        << std::string(default_width - r[2].size() + 2, ' ') << r[3] << "\n";
  }
  return out.str();
}

ResolvedConfig::ResolvedConfig(const SchemaSpec& schema, std::string source)
    : schema_(&schema), source_(std::move(source)) {}

const Value& ResolvedConfig::value(const std::string& path) const {
  auto it = values_.find(path);
  if (it == values_.end()) throw std::logic_error("recipe value " + path + " was never resolved");
  return it->second;
}

void ResolvedConfig::set(const std::string& path, Value value, std::string origin) {
  values_[path] = std::move(value);
  origins_[path] = std::move(origin);
}

std::string ResolvedConfig::where(const std::string& path) const {
  auto it = origins_.find(path);
  return it == origins_.end() || it->second.empty() ? source_ : it->second;
}

void ResolvedConfig::fail(const std::string& path, const std::string& message) const {
  throw Error("recipe", where(path) + ": " + path + ": " + message);
}

std::string ResolvedConfig::to_yaml(bool with_docs) const {
  std::ostringstream out;
  std::function<void(const std::string&, int)> emit = [&](const std::string& section, int depth) {
    const std::string indent(2 * depth, ' ');
    // Align the comments of one section's keys.
    size_t width = 0;
    std::vector<std::pair<std::string, std::string>> lines;  // (text, comment) or section marker
    for (const auto& name : schema_->children(section)) {
      const std::string path = join_path(section, name);
      if (schema_->is_section(path)) continue;
      width = std::max(width, indent.size() + name.size() + 2 + format_value(value(path)).size());
    }
    for (const auto& name : schema_->children(section)) {
      const std::string path = join_path(section, name);
      if (schema_->is_section(path)) {
        if (with_docs)
          out << (depth == 0 ? "\n" : "") << indent << "# " << schema_->section_doc(path) << "\n";
        out << indent << name << ":\n";
        emit(path, depth + 1);
        continue;
      }
      const std::string text = indent + name + ": " + format_value(value(path));
      out << text;
      if (with_docs) {
        const KeySpec& key = *schema_->find_key(path);
        out << std::string(width - text.size() + 2, ' ') << "# " << key.doc << " ["
            << key.type_description() << "]";
      }
      out << "\n";
    }
  };
  emit("", 0);
  return out.str();
}

std::string ResolvedConfig::hash() const {
  return fnv1a64_hex(to_yaml(false));
}

ResolvedConfig resolve_config(const SchemaSpec& schema, const std::string& yaml_text,
                              const std::string& source,
                              const std::vector<std::string>& overrides) {
  Resolver resolver(schema, source, overrides);
  resolver.read_document(yaml_text);
  for (const auto& arg : overrides)
    resolver.apply_override(arg);
  return resolver.finish();
}

std::optional<PeekedValue> peek_top_level(const std::string& yaml_text, const std::string& source,
                                          const std::string& key,
                                          const std::vector<std::string>& overrides) {
  std::optional<PeekedValue> found;
  std::optional<YAML::Node> node;
  // The recipe, else the recipes it builds on, nearest first.
  std::string text = yaml_text, file = source;
  std::vector<std::string> chain;
  while (!found) {
    const YAML::Node root = load_document(text, file);
    for (const auto& entry : root) {
      if (entry.first.IsScalar() && entry.first.Scalar() == key) {
        found = PeekedValue{"", file + ":" + std::to_string(entry.first.Mark().line + 1)};
        node = entry.second;
        break;  // a duplicate is reported by the full validation
      }
    }
    chain.push_back(file);
    const auto base = root.IsNull() ? std::nullopt : base_of(root, file);
    if (found || !base) break;
    text = read_base(*base, chain);
    file = base->file.string();
  }
  for (const auto& arg : overrides) {
    const auto parts = parse_override(arg);
    if (!parts || parts->first != key) continue;  // malformed overrides are reported later
    try {
      node = YAML::Load(parts->second);
    } catch (const YAML::Exception& e) {
      throw Error("recipe",
                  "override '" + arg + "': " + key + ": value is not valid YAML: " + e.msg);
    }
    found = PeekedValue{"", "override '" + arg + "'"};
  }
  if (!found) return std::nullopt;
  if (!node->IsScalar()) {
    throw Error("recipe", found->where + ": " + key + ": expected a name, got " + describe(*node));
  }
  found->value = node->Scalar();
  return found;
}

std::pair<std::string, std::string> split_override(const std::string& override_arg) {
  if (auto parts = parse_override(override_arg)) return *parts;
  throw Error("recipe",
              "override '" + override_arg + "': expected KEY=VALUE, e.g. train.max_steps=10");
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  // Edit distance counting a swap of neighbours as one edit (optimal string alignment), the
  // commonest typos. A match may differ in a third of the word (at least 1 edit, at most 3):
  // that catches typos without suggesting unrelated keys.
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i)
      d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j)
      d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      for (size_t j = 1; j <= b.size(); ++j) {
        d[i][j] =
            std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
    return d[a.size()][b.size()];
  };
  const size_t limit = std::min<size_t>(3, std::max<size_t>(1, word.size() / 3));
  std::string best;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    const size_t d = distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string format_float(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  // The shortest %g form that reads back to the same double.
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  std::string s = buf;
  const auto e = s.find('e');
  std::string mantissa = s.substr(0, e);
  if (mantissa.find('.') == std::string::npos) mantissa += ".0";
  if (e == std::string::npos) return mantissa;
  // "1e-08" -> "1.0e-8", "1e+20" -> "1.0e+20" (YAML 1.1 readers want the dot and the sign).
  const char sign = s[e + 1];
  std::string digits = s.substr(e + 2);
  digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size() - 1));
  return mantissa + "e" + sign + digits;
}

}  // namespace tailor

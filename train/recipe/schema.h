// Typed recipe schemas: every key a recipe may contain, its type, default (or "required"), range
// and one-line doc, declared once. From that one declaration come validation of YAML recipe files
// and `key.sub=value` overrides, the resolved recipe (all defaults filled, printed as YAML), the
// `tailor run --help` key reference, and the binding into a plain C++ struct.
//
// Error messages name where a value came from, the key path and what was expected:
//   [recipe] recipes/quickstart.yaml:14: optimizer.lr: expected a number, got "fast"
//   [recipe] recipes/quickstart.yaml:17: optimizer.weight_decy: unknown key; did you mean
//   'weight_decay'? [recipe] override 'train.max_steps=ten': train.max_steps: expected an integer,
//   got "ten"
// (torchtune validates its configs the same way before any work starts: config/_validate.py.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/enum_names.h"

namespace tailor {

// The type of one recipe key.
enum class ValueKind {
  kInt,          // YAML integer, e.g. 200
  kFloat,        // YAML number, e.g. 3.0e-4 (integers are accepted)
  kBool,         // true | false
  kString,       // any scalar
  kPath,         // a filesystem path, relative to the working directory
  kEnum,         // one of a fixed list of names
  kStringList,   // [a, b, c]
  kFloatList,    // [0.1, 0.2]
  kWeightTable,  // {alice: {shorter_length: 1.0}, bob: {new_lines: 0.7, lowercase: 0.3}}
  kStringTable,  // {carol: {model: runs/rm/export}, dave: {model: runs/vpl/export, context:
                 // c.jsonl}}
};

// Named weights per name: {alice: {shorter_length: 1.0}}. Every inner mapping is non-empty.
using WeightTable = std::map<std::string, std::map<std::string, double>>;
// Named small tables of strings per name: {carol: {model: runs/rm/export}}. Every inner mapping is
// non-empty; its values are any YAML scalars, read as strings (what they mean is the stage's
// business: the schema does not know the inner names).
using StringTable = std::map<std::string, std::map<std::string, std::string>>;

// A key's value. kInt -> int64_t, kFloat -> double, kBool -> bool, kString/kPath/kEnum -> string,
// kStringList -> vector<string>, kFloatList -> vector<double>, kWeightTable -> WeightTable,
// kStringTable -> StringTable.
using Value = std::variant<int64_t, double, bool, std::string, std::vector<std::string>,
                           std::vector<double>, WeightTable, StringTable>;

// One end of a numeric range (applies to every element of a kFloatList, every weight of a
// kWeightTable).
struct Bound {
  double value;
  bool inclusive;
};

// Everything the schema knows about one (leaf) key.
struct KeySpec {
  std::string path;  // "optimizer.lr"
  ValueKind kind = ValueKind::kString;
  std::string doc;                     // one line, shown in --help and --print-config
  bool required = false;               // no default: the recipe must set it (non-empty for strings)
  std::optional<Value> default_value;  // set exactly when !required
  std::vector<std::string> choices;    // kEnum only
  std::optional<Bound> lower, upper;   // kInt / kFloat / kFloatList / kWeightTable

  // "float > 0", "int >= 1", "one of text|prompt_response", "list of strings", ...
  std::string type_description() const;
};

// The keys and sections of one recipe kind, in declaration order (which is also print order).
class SchemaSpec {
 public:
  // Sections must be declared before the keys inside them ("optimizer" before "optimizer.lr").
  void add_section(const std::string& path, const std::string& doc);
  void add_key(KeySpec key);

  const KeySpec* find_key(const std::string& path) const;
  KeySpec& key(const std::string& path);  // for the builder; throws std::logic_error if absent
  bool is_section(const std::string& path) const;
  const std::string& section_doc(const std::string& path) const;
  // Names directly inside `section` ("" = top level), in declaration order.
  std::vector<std::string> children(const std::string& section) const;
  std::vector<std::string> sections() const;  // section paths in declaration order
  const std::vector<KeySpec>& keys() const { return keys_; }

  // Throws std::logic_error unless every key has a doc and a default or `required`, and every
  // default passes the key's own checks. Schemas call it once when they are built.
  void check_complete() const;

  // The key reference for help text: one line per key with type, default and doc.
  std::string reference() const;

 private:
  struct Entry {
    std::string path;
    bool is_section;
  };
  std::vector<Entry> entries_;
  std::vector<KeySpec> keys_;
  std::map<std::string, std::string> section_docs_;
};

// A recipe after validation: every key of the schema has a value, and each value remembers where
// it came from ("recipes/q.yaml:14", "override 'train.max_steps=10'", or the default).
class ResolvedConfig {
 public:
  ResolvedConfig(const SchemaSpec& schema, std::string source);

  const SchemaSpec& schema() const { return *schema_; }
  const std::string& source() const { return source_; }  // the recipe file as named by the user

  const Value& value(const std::string& path) const;  // throws std::logic_error if not set
  template <class V>
  const V& get(const std::string& path) const {
    return std::get<V>(value(path));
  }
  // An enum key's value as its enumerator; `names` is the table the key was declared with.
  template <class E>
  E get(const std::string& path, const EnumNames<E>& names) const {
    if (const auto v = enum_from_name(names, get<std::string>(path))) return *v;
    throw std::logic_error(path + ": a value outside its own name table");
  }
  void set(const std::string& path, Value value, std::string origin);

  // Where `path` got its value: "file:line", "override '...'", or the file name for defaults.
  std::string where(const std::string& path) const;
  // Throws Error("recipe", where(path) + ": " + path + ": " + message).
  [[noreturn]] void fail(const std::string& path, const std::string& message) const;

  // The resolved recipe as YAML in schema order; with_docs adds each key's doc as a comment.
  // Parsing the output against the same schema gives back the same values.
  std::string to_yaml(bool with_docs) const;
  // 16 hex digits: FNV-1a 64 of to_yaml(false). Equal recipes hash equally on every machine.
  std::string hash() const;

 private:
  const SchemaSpec* schema_;
  std::string source_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> origins_;
};

// The top-level key by which a recipe builds on another: `base: rm_synth_base.yaml` reads that
// recipe first (relative to the folder of the recipe naming it; it may have a base of its own),
// and every key this recipe sets replaces the base's value. Sections merge key by key; a list or
// a table (users, reward_users) is one value and is replaced whole. Overrides win over both.
// A missing base file and a recipe that builds on itself are errors naming the files.
inline constexpr const char* kBaseRecipeKey = "base";

// Parses `yaml_text` (named `source` in messages; a file name, for finding its base recipe),
// reads the recipes it builds on (kBaseRecipeKey), applies `overrides` ("a.b=value", the value
// parsed as a YAML scalar or flow collection) and fills defaults. Throws Error("recipe", ...)
// listing every problem found: unknown keys (with a suggestion), duplicate keys, wrong types,
// out-of-range values, bad enum names, missing required keys, malformed overrides. Overrides
// replace the file's value, which is then not validated (an override can fix a bad value).
ResolvedConfig resolve_config(const SchemaSpec& schema, const std::string& yaml_text,
                              const std::string& source,
                              const std::vector<std::string>& overrides = {});

// A top-level scalar of a recipe text after overrides, with where it came from ("file:line" or
// "override '...'"); nullopt when none of the recipe, its base recipes and the overrides sets it.
// Chooses the schema (the `stage` key) before the rest is validated. Throws Error("recipe", ...)
// for invalid YAML or a non-scalar value.
struct PeekedValue {
  std::string value;
  std::string where;
};
std::optional<PeekedValue> peek_top_level(const std::string& yaml_text, const std::string& source,
                                          const std::string& key,
                                          const std::vector<std::string>& overrides = {});

// Splits "a.b=value" into ("a.b", "value"); throws Error("recipe", "override 'x': ...").
std::pair<std::string, std::string> split_override(const std::string& override_arg);

// The closest of `candidates` to `word` by edit distance, or "" if none is close enough.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// Formats a double so that it parses back to the same bits, as YAML likes it: 0.0003, 1.0, 1.0e-8.
std::string format_float(double value);

// ---------------------------------------------------------------------------------------------
// Schema<T>: a SchemaSpec whose keys are bound to the members of a plain struct T, so a resolved
// recipe converts to T and back. A key's kind follows from the member's type (int64_t, double,
// bool, std::string, std::filesystem::path, std::vector<std::string>, std::vector<double>,
// WeightTable, StringTable); enums use choice().
//
//   Schema<Recipe> s;
//   s.section("optimizer", "AdamW with decoupled weight decay");
//   s.key("optimizer.lr", [](auto& r) -> auto& { return r.optimizer.lr; })
//       .doc("peak learning rate").default_value(3e-4).above(0);

template <class M>
class KeyBuilder {
 public:
  KeyBuilder(KeySpec& spec, std::function<Value(const M&)> to_value)
      : spec_(spec), to_value_(std::move(to_value)) {}
  KeyBuilder& doc(const std::string& text) {
    spec_.doc = text;
    return *this;
  }
  KeyBuilder& default_value(const M& value) {
    spec_.default_value = to_value_(value);
    spec_.required = false;
    return *this;
  }
  KeyBuilder& required() {
    spec_.required = true;
    spec_.default_value.reset();
    return *this;
  }
  KeyBuilder& at_least(double v) { return lower(v, true); }
  KeyBuilder& above(double v) { return lower(v, false); }
  KeyBuilder& at_most(double v) { return upper(v, true); }
  KeyBuilder& below(double v) { return upper(v, false); }

 private:
  KeyBuilder& lower(double v, bool inclusive) {
    spec_.lower = Bound{v, inclusive};
    return *this;
  }
  KeyBuilder& upper(double v, bool inclusive) {
    spec_.upper = Bound{v, inclusive};
    return *this;
  }
  KeySpec& spec_;
  std::function<Value(const M&)> to_value_;
};

namespace detail {

// The ValueKind and Value conversions of each supported member type.
template <class M>
struct MemberKind;
template <>
struct MemberKind<int64_t> {
  static constexpr ValueKind kind = ValueKind::kInt;
  static Value to(const int64_t& v) { return v; }
  static int64_t from(const Value& v) { return std::get<int64_t>(v); }
};
template <>
struct MemberKind<double> {
  static constexpr ValueKind kind = ValueKind::kFloat;
  static Value to(const double& v) { return v; }
  static double from(const Value& v) { return std::get<double>(v); }
};
template <>
struct MemberKind<bool> {
  static constexpr ValueKind kind = ValueKind::kBool;
  static Value to(const bool& v) { return v; }
  static bool from(const Value& v) { return std::get<bool>(v); }
};
template <>
struct MemberKind<std::string> {
  static constexpr ValueKind kind = ValueKind::kString;
  static Value to(const std::string& v) { return v; }
  static std::string from(const Value& v) { return std::get<std::string>(v); }
};
template <>
struct MemberKind<std::filesystem::path> {
  static constexpr ValueKind kind = ValueKind::kPath;
  static Value to(const std::filesystem::path& v) { return v.string(); }
  static std::filesystem::path from(const Value& v) { return std::get<std::string>(v); }
};
template <>
struct MemberKind<std::vector<std::string>> {
  static constexpr ValueKind kind = ValueKind::kStringList;
  static Value to(const std::vector<std::string>& v) { return v; }
  static std::vector<std::string> from(const Value& v) {
    return std::get<std::vector<std::string>>(v);
  }
};
template <>
struct MemberKind<std::vector<double>> {
  static constexpr ValueKind kind = ValueKind::kFloatList;
  static Value to(const std::vector<double>& v) { return v; }
  static std::vector<double> from(const Value& v) { return std::get<std::vector<double>>(v); }
};
template <>
struct MemberKind<WeightTable> {
  static constexpr ValueKind kind = ValueKind::kWeightTable;
  static Value to(const WeightTable& v) { return v; }
  static WeightTable from(const Value& v) { return std::get<WeightTable>(v); }
};
template <>
struct MemberKind<StringTable> {
  static constexpr ValueKind kind = ValueKind::kStringTable;
  static Value to(const StringTable& v) { return v; }
  static StringTable from(const Value& v) { return std::get<StringTable>(v); }
};

template <class T, class Access>
using MemberType = std::decay_t<decltype(std::declval<Access>()(std::declval<T&>()))>;

}  // namespace detail

template <class T>
class Schema {
 public:
  Schema& section(const std::string& path, const std::string& doc) {
    spec_.add_section(path, doc);
    return *this;
  }

  // A key bound to the member `access(t)` returns (a generic lambda returning a reference).
  template <class Access, class M = detail::MemberType<T, Access>>
  KeyBuilder<M> key(const std::string& path, Access access) {
    using Kind = detail::MemberKind<M>;
    return bind<M>(path, Kind::kind, {}, access, &Kind::to, &Kind::from);
  }

  // An enum key bound to a C++ enum member; `names` lists each name with its enumerator.
  template <class Access, class E = detail::MemberType<T, Access>>
  KeyBuilder<E> choice(const std::string& path, Access access,
                       std::vector<std::pair<std::string, E>> names) {
    static_assert(std::is_enum_v<E>, "choice() with (name, enumerator) pairs needs an enum member");
    std::vector<std::string> choices;
    for (const auto& [name, e] : names)
      choices.push_back(name);
    auto to = [names](const E& e) -> Value {
      for (const auto& [name, value] : names)
        if (value == e) return name;
      throw std::logic_error("enum value without a name in the schema");
    };
    auto from = [names](const Value& v) -> E {
      for (const auto& [name, value] : names)
        if (name == std::get<std::string>(v)) return value;
      throw std::logic_error("enum name without a value in the schema");
    };
    return bind<E>(path, ValueKind::kEnum, choices, access, to, from);
  }

  // An enum key bound to a std::string member (for name lists owned elsewhere, e.g. presets).
  template <class Access>
  KeyBuilder<std::string> choice(const std::string& path, Access access,
                                 std::vector<std::string> names) {
    using Kind = detail::MemberKind<std::string>;
    return bind<std::string>(path, ValueKind::kEnum, std::move(names), access, &Kind::to,
                             &Kind::from);
  }

  const SchemaSpec& spec() const { return spec_; }

  // The struct holding a resolved config's values.
  T bind(const ResolvedConfig& config) const {
    T t{};
    for (const auto& b : bindings_)
      b.set(t, config.value(b.path));
    return t;
  }
  // The resolved config holding a struct's values (origins: the given source name).
  ResolvedConfig unbind(const T& t, const std::string& source) const {
    ResolvedConfig config(spec_, source);
    for (const auto& b : bindings_)
      config.set(b.path, b.get(t), "");
    return config;
  }

 private:
  struct Binding {
    std::string path;
    std::function<Value(const T&)> get;
    std::function<void(T&, const Value&)> set;
  };

  template <class M, class Access, class To, class From>
  KeyBuilder<M> bind(const std::string& path, ValueKind kind, std::vector<std::string> choices,
                     Access access, To to, From from) {
    KeySpec spec;
    spec.path = path;
    spec.kind = kind;
    spec.choices = std::move(choices);
    spec_.add_key(std::move(spec));
    bindings_.push_back({path, [access, to](const T& t) -> Value { return to(access(t)); },
                         [access, from](T& t, const Value& v) { access(t) = from(v); }});
    // The builder refers into spec_; it is meant to be used within the declaring statement.
    return KeyBuilder<M>(spec_.key(path), to);
  }

  SchemaSpec spec_;
  std::vector<Binding> bindings_;
};

}  // namespace tailor

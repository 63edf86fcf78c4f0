#include "data/transform_spec.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <map>
#include <stdexcept>
#include <variant>

namespace qb {

namespace {

/// A number, or a (lo, hi) pair as scale= and ratio= take.
using Argument = std::variant<double, std::array<double, 2>>;

/// A call such as RandomCrop(32, padding=4): the name, positional and keyword arguments.
struct Call {
  std::string name;
  std::vector<Argument> positional;
  std::map<std::string, Argument> keyword;
};

/// A recursive-descent reader of one call; every error says where in the text it stopped.
class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Call call() {
    Call c;
    c.name = identifier();
    expect('(');
    skip_space();
    if (peek() != ')') {
      while (true) {
        size_t start = pos_;
        skip_space();
        if (std::isalpha(static_cast<unsigned char>(peek()))) {
          std::string key = identifier();
          expect('=');
          if (!c.keyword.emplace(key, argument()).second) fail("repeats argument " + key);
        } else {
          if (!c.keyword.empty()) {
            pos_ = start;
            fail("has a positional argument after a keyword argument");
          }
          c.positional.push_back(argument());
        }
        skip_space();
        if (peek() == ')') break;
        if (peek() != ',') fail("expects ',' or ')'");
        ++pos_;
      }
    }
    expect(')');
    skip_space();
    if (pos_ != text_.size()) fail("has text after the closing parenthesis");
    return c;
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (std::isspace(static_cast<unsigned char>(peek()))) ++pos_;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(what + " (at character " + std::to_string(pos_ + 1) + ")");
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expects '") + c + "'");
    ++pos_;
  }
  std::string identifier() {
    skip_space();
    size_t start = pos_;
    while (std::isalnum(static_cast<unsigned char>(peek())) || peek() == '_') ++pos_;
    if (start == pos_) fail("expects a name");
    return text_.substr(start, pos_ - start);
  }
  double number() {
    skip_space();
    const char* begin = text_.c_str() + pos_;
    char* end = nullptr;
    double value = std::strtod(begin, &end);
    if (end == begin || !std::isfinite(value)) fail("expects a number");
    pos_ += static_cast<size_t>(end - begin);
    return value;
  }
  Argument argument() {
    skip_space();
    if (peek() != '(') return number();
    ++pos_;
    double lo = number();
    expect(',');
    double hi = number();
    expect(')');
    return std::array<double, 2>{lo, hi};
  }

  const std::string& text_;
  size_t pos_ = 0;
};

/// Looks arguments up by position or keyword, the way Python binds them, and checks their kind.
class Arguments {
 public:
  Arguments(Call call, std::vector<std::string> names)
      : call_(std::move(call)), names_(std::move(names)) {
    if (call_.positional.size() > names_.size()) {
      throw std::invalid_argument(call_.name + " takes at most " + std::to_string(names_.size()) +
                                  " arguments");
    }
    for (const auto& [key, value] : call_.keyword) {
      auto it = std::find(names_.begin(), names_.end(), key);
      if (it == names_.end()) {
        throw std::invalid_argument(call_.name + " has no argument '" + key + "'");
      }
      if (static_cast<size_t>(it - names_.begin()) < call_.positional.size()) {
        throw std::invalid_argument(call_.name + " got '" + key + "' twice");
      }
    }
  }

  std::optional<Argument> find(const std::string& name) const {
    auto position = static_cast<size_t>(std::find(names_.begin(), names_.end(), name) - names_.begin());
    if (position < call_.positional.size()) return call_.positional[position];
    auto it = call_.keyword.find(name);
    if (it != call_.keyword.end()) return it->second;
    return std::nullopt;
  }
  double number(const std::string& name, std::optional<double> fallback = std::nullopt) const {
    std::optional<Argument> value = find(name);
    if (!value) {
      if (fallback) return *fallback;
      throw std::invalid_argument(call_.name + " needs argument '" + name + "'");
    }
    if (!std::holds_alternative<double>(*value)) {
      throw std::invalid_argument(call_.name + ": '" + name + "' must be a number");
    }
    return std::get<double>(*value);
  }
  int integer(const std::string& name, std::optional<int> fallback = std::nullopt) const {
    double value = number(name, fallback ? std::optional<double>(*fallback) : std::nullopt);
    if (value != std::floor(value) || std::abs(value) > 1e9) {
      throw std::invalid_argument(call_.name + ": '" + name + "' must be an integer");
    }
    return static_cast<int>(value);
  }
  std::array<double, 2> pair(const std::string& name, std::array<double, 2> fallback) const {
    std::optional<Argument> value = find(name);
    if (!value) return fallback;
    if (!std::holds_alternative<std::array<double, 2>>(*value)) {
      throw std::invalid_argument(call_.name + ": '" + name + "' must be a pair (lo, hi)");
    }
    return std::get<std::array<double, 2>>(*value);
  }

 private:
  Call call_;
  std::vector<std::string> names_;
};

}  // namespace

std::shared_ptr<const ImageTransform> parse_transform(const std::string& spec) {
  Call call = Parser(spec).call();
  const std::string name = call.name;
  if (name == "Resize") {
    Arguments args(std::move(call), {"size"});
    return std::make_shared<Resize>(args.integer("size"));
  }
  if (name == "CenterCrop") {
    Arguments args(std::move(call), {"size"});
    return std::make_shared<CenterCrop>(args.integer("size"));
  }
  if (name == "RandomResizedCrop") {
    Arguments args(std::move(call), {"size", "scale", "ratio"});
    return std::make_shared<RandomResizedCrop>(args.integer("size"),
                                               args.pair("scale", {0.08, 1.0}),
                                               args.pair("ratio", {3.0 / 4.0, 4.0 / 3.0}));
  }
  if (name == "RandomCrop") {
    Arguments args(std::move(call), {"size", "padding"});
    return std::make_shared<RandomCrop>(args.integer("size"), args.integer("padding", 0));
  }
  if (name == "RandomHorizontalFlip") {
    Arguments args(std::move(call), {"p"});
    double p = args.number("p", 0.5);
    if (p < 0 || p > 1) throw std::invalid_argument("RandomHorizontalFlip: p must be in [0, 1]");
    return std::make_shared<RandomHorizontalFlip>(p);
  }
  throw std::invalid_argument("unknown transform '" + name +
                              "' (known: Resize, CenterCrop, RandomResizedCrop, RandomCrop, "
                              "RandomHorizontalFlip)");
}

Compose parse_pipeline(const std::vector<std::string>& specs,
                       const std::optional<Normalization>& normalization) {
  Compose pipeline;
  for (size_t i = 0; i < specs.size(); ++i) {
    try {
      pipeline.add(parse_transform(specs[i]));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("transform " + std::to_string(i + 1) + " (\"" + specs[i] +
                                  "\"): " + e.what());
    }
  }
  if (normalization) pipeline.normalize_with(*normalization);
  return pipeline;
}

}  // namespace qb

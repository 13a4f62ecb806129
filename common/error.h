// tailor's one exception type. Messages start with a scope tag, e.g.
//   [recipe] optimizer.lr: expected a number, got "fast"
//   [safetensors] model.safetensors: header length 9e18 exceeds file size 1024
#pragma once

#include <stdexcept>
#include <string>

namespace tailor {

class Error : public std::runtime_error {
 public:
  Error(const std::string& scope, const std::string& message)
      : std::runtime_error("[" + scope + "] " + message), scope_(scope) {}
  const std::string& scope() const { return scope_; }

 private:
  std::string scope_;
};

}  // namespace tailor

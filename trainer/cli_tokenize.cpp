// Placeholder until the 'tokenize' command lands; replaced by its real implementation.
#include "trainer/commands.h"

#include "common/error.h"

namespace tailor::cli {

int tokenize_command(const std::vector<std::string>& args) {
  throw Error("cli", "'tokenize' is not implemented yet");
}

}  // namespace tailor::cli

// Placeholder until the 'data' command lands; replaced by its real implementation.
#include "trainer/commands.h"

#include "common/error.h"

namespace tailor::cli {

int data_command(const std::vector<std::string>& args) {
  throw Error("cli", "'data' is not implemented yet");
}

}  // namespace tailor::cli

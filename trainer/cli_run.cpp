// Placeholder until the 'run' command lands; replaced by its real implementation.
#include "trainer/commands.h"

#include "common/error.h"

namespace tailor::cli {

int run_command(const std::vector<std::string>& args) {
  throw Error("cli", "'run' is not implemented yet");
}

}  // namespace tailor::cli

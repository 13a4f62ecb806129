// Placeholder until the 'export' command lands; replaced by its real implementation.
#include "trainer/commands.h"

#include "common/error.h"

namespace tailor::cli {

int export_command(const std::vector<std::string>& args) {
  throw Error("cli", "'export' is not implemented yet");
}

}  // namespace tailor::cli

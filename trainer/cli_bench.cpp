// Placeholder until the 'bench' command lands; replaced by its real implementation.
#include "trainer/commands.h"

#include "common/error.h"

namespace tailor::cli {

int bench_command(const std::vector<std::string>& args) {
  throw Error("cli", "'bench' is not implemented yet");
}

}  // namespace tailor::cli

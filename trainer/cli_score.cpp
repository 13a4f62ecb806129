// Placeholder until the 'score' command lands; replaced by its real implementation.
#include "trainer/commands.h"

#include "common/error.h"

namespace tailor::cli {

int score_command(const std::vector<std::string>& args) {
  throw Error("cli", "'score' is not implemented yet");
}

}  // namespace tailor::cli

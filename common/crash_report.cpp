#include "common/crash_report.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace tailor {
namespace {

void write_text(const char* text) {
  const ssize_t ignored = write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// Only async-signal-safe calls, except backtrace(), whose first call may allocate: it is made
// once at installation so the handler does not.
void on_fatal_signal(int signal_number) {
  write_text("\ntailor: fatal signal ");
  write_text(strsignal(signal_number));
  write_text("; native stack:\n");
  void* frames[64];
  const int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  // The default action (core dump / exit status of the signal), as without this handler.
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

}  // namespace

void install_crash_report() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  void* warm[1];
  backtrace(warm, 1);
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  for (int signal_number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
    sigaction(signal_number, &action, nullptr);
}

}  // namespace tailor

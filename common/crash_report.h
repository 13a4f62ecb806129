// A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints its name and the native stack
// to stderr before the process dies as it would have: a crash far from any log line (inside a
// library, or in another thread) then says where it happened. Function names need the program
// linked with -rdynamic (CMake ENABLE_EXPORTS, set for tailor and the test programs).
#pragma once

namespace tailor {

// Idempotent; call early in main().
void install_crash_report();

}  // namespace tailor

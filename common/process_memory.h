// This process's memory as Linux reports it (/proc/self/status), for progress and benchmarks.
#pragma once

namespace tailor {

// Peak resident set size (VmHWM) in MiB since the process started or the last
// reset_peak_rss(); -1 where /proc is unavailable.
double peak_rss_mib();

// Resets VmHWM to the current RSS (writes "5" to /proc/self/clear_refs, Linux >= 4.0).
void reset_peak_rss();

}  // namespace tailor

#pragma once
// Whether a timed repetition had the cores to itself. Another busy process on the machine
// does not show in the spread of repetitions (all of them are slow alike), but it shows in
// what the kernel says about this process: less CPU time than wall time per thread, and
// involuntary context switches (the scheduler taking the core away); on a virtual machine,
// also in the time the hypervisor gave the machine's CPUs to someone else (steal).

#include <nlohmann/json.hpp>

#include <cstdint>

namespace qb {

/// This process's counters at one moment.
struct UsageSnapshot {
  double wall_s = 0;
  double cpu_s = 0;                     // CLOCK_PROCESS_CPUTIME_ID: all threads
  int64_t involuntary_switches = 0;     // getrusage(RUSAGE_SELF).ru_nivcsw
  int64_t procs_running = 0;            // /proc/stat: runnable tasks on the machine, ours included
  int64_t steal_ticks = 0;              // /proc/stat: the CPUs' steal time, in clock ticks
  double loadavg_1m = 0;                // /proc/loadavg
};

UsageSnapshot take_usage_snapshot();

/// What one repetition had, from snapshots before and after it.
struct RepetitionUsage {
  int threads = 1;
  double wall_s = 0;
  double cpu_s = 0;
  /// cpu_s / (wall_s * threads): about 1 when every thread had a core throughout.
  double cpu_per_thread = 0;
  int64_t involuntary_switches = 0;
  /// Runnable tasks on the machine at the end, beyond this process's own threads.
  int64_t other_runnable = 0;
  /// Steal time over wall time times the machine's CPUs: 0 off a virtual machine.
  double steal_fraction = 0;
  double loadavg_1m = 0;
};

RepetitionUsage usage_between(const UsageSnapshot& before, const UsageSnapshot& after,
                              int threads);

/// When a repetition counts as contended ([latency] keys of the same names).
struct ContentionPolicy {
  double min_cpu_per_thread = 0.85;
  /// A quiet machine has a few tens per thread and second (kernel threads waking up); a
  /// busy one, a switch every scheduler time slice (a few ms).
  double max_involuntary_switches_per_thread_s = 100;
  double max_steal_fraction = 0.05;
};

/// Empty when `usage` looks quiet, else why not ("cpu/thread 0.52 < 0.85").
std::string contention_reason(const RepetitionUsage& usage, const ContentionPolicy& policy);

nlohmann::json to_json(const RepetitionUsage& usage);
RepetitionUsage repetition_usage_from_json(const nlohmann::json& json);

}  // namespace qb

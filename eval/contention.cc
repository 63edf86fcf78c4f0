#include "eval/contention.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

namespace qb {

namespace {

// /proc/stat's summed steal time (the eighth number of its "cpu" line) and procs_running.
void read_proc_stat(UsageSnapshot& s) {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "cpu") {
      int64_t value = 0;
      for (int field = 1; field <= 8 && in >> value; ++field) {
        if (field == 8) s.steal_ticks = value;
      }
    } else if (key == "procs_running") {
      in >> s.procs_running;
    }
    in.ignore(1 << 20, '\n');
  }
}

double loadavg_1m() {
  std::ifstream in("/proc/loadavg");
  double value = 0;
  in >> value;
  return value;
}

}  // namespace

UsageSnapshot take_usage_snapshot() {
  UsageSnapshot s;
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  s.cpu_s = static_cast<double>(cpu.tv_sec) + 1e-9 * static_cast<double>(cpu.tv_nsec);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  s.involuntary_switches = usage.ru_nivcsw;
  read_proc_stat(s);
  s.loadavg_1m = loadavg_1m();
  return s;
}

RepetitionUsage usage_between(const UsageSnapshot& before, const UsageSnapshot& after,
                              int threads) {
  RepetitionUsage u;
  u.threads = threads;
  u.wall_s = after.wall_s - before.wall_s;
  u.cpu_s = after.cpu_s - before.cpu_s;
  u.cpu_per_thread = u.wall_s > 0 ? u.cpu_s / (u.wall_s * threads) : 0;
  u.involuntary_switches = after.involuntary_switches - before.involuntary_switches;
  // The snapshot is taken by one of our threads while the others may be spinning in the pool.
  u.other_runnable = std::max<int64_t>(0, after.procs_running - threads);
  const double cpu_seconds = u.wall_s * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN));
  u.steal_fraction = cpu_seconds > 0 ? static_cast<double>(after.steal_ticks - before.steal_ticks) /
                                           static_cast<double>(sysconf(_SC_CLK_TCK)) / cpu_seconds
                                     : 0;
  u.loadavg_1m = after.loadavg_1m;
  return u;
}

std::string contention_reason(const RepetitionUsage& usage, const ContentionPolicy& policy) {
  char text[160];
  if (usage.cpu_per_thread < policy.min_cpu_per_thread) {
    std::snprintf(text, sizeof text, "CPU time per thread %.2f of wall time < %.2f",
                  usage.cpu_per_thread, policy.min_cpu_per_thread);
    return text;
  }
  const double rate = usage.wall_s > 0 ? static_cast<double>(usage.involuntary_switches) /
                                             (usage.wall_s * usage.threads)
                                       : 0;
  if (rate > policy.max_involuntary_switches_per_thread_s) {
    std::snprintf(text, sizeof text, "%.0f involuntary context switches per thread and second > %.0f",
                  rate, policy.max_involuntary_switches_per_thread_s);
    return text;
  }
  if (usage.steal_fraction > policy.max_steal_fraction) {
    std::snprintf(text, sizeof text, "the hypervisor took %.0f%% of the CPUs' time (steal) > %.0f%%",
                  100 * usage.steal_fraction, 100 * policy.max_steal_fraction);
    return text;
  }
  return "";
}

nlohmann::json to_json(const RepetitionUsage& u) {
  return {{"threads", u.threads},
          {"wall_s", u.wall_s},
          {"cpu_s", u.cpu_s},
          {"cpu_per_thread", u.cpu_per_thread},
          {"involuntary_switches", u.involuntary_switches},
          {"other_runnable", u.other_runnable},
          {"steal_fraction", u.steal_fraction},
          {"loadavg_1m", u.loadavg_1m}};
}

RepetitionUsage repetition_usage_from_json(const nlohmann::json& j) {
  RepetitionUsage u;
  u.threads = j.at("threads").get<int>();
  u.wall_s = j.at("wall_s").get<double>();
  u.cpu_s = j.at("cpu_s").get<double>();
  u.cpu_per_thread = j.at("cpu_per_thread").get<double>();
  u.involuntary_switches = j.at("involuntary_switches").get<int64_t>();
  u.other_runnable = j.at("other_runnable").get<int64_t>();
  u.steal_fraction = j.at("steal_fraction").get<double>();
  u.loadavg_1m = j.at("loadavg_1m").get<double>();
  return u;
}

}  // namespace qb

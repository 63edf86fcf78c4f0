#include "eval/contention.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

namespace qb {

namespace {

int64_t procs_running() {
  std::ifstream in("/proc/stat");
  std::string key;
  int64_t value = 0;
  while (in >> key) {
    if (key == "procs_running" && in >> value) return value;
    in.ignore(1 << 20, '\n');
  }
  return 0;
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
  s.procs_running = procs_running();
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
  return "";
}

nlohmann::json to_json(const RepetitionUsage& u) {
  return {{"threads", u.threads},
          {"wall_s", u.wall_s},
          {"cpu_s", u.cpu_s},
          {"cpu_per_thread", u.cpu_per_thread},
          {"involuntary_switches", u.involuntary_switches},
          {"other_runnable", u.other_runnable},
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
  u.loadavg_1m = j.at("loadavg_1m").get<double>();
  return u;
}

}  // namespace qb

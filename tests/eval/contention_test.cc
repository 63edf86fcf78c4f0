// Contention shows in the usage of every repetition: this test keeps the cores busy with
// processes of its own (each stops by itself after 60 s at the latest) and checks that the
// repetitions measured meanwhile are flagged, and that those measured after are not. It is
// tagged exclusive: it needs the machine to itself for the quiet half.

#include "eval/contention.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "eval/latency.h"
#include "tests/catch.h"

namespace qb {
namespace {

// One millisecond of arithmetic on this thread.
void spin_1ms() {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
  volatile double x = 1;
  while (std::chrono::steady_clock::now() < end) x = x * 1.0000001 + 1e-9;
}

/// `n` busy child processes, killed when this goes out of scope.
class BusyProcesses {
 public:
  explicit BusyProcesses(unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      pid_t pid = fork();
      if (pid == 0) {
        alarm(60);  // never outlives a crashed test
        volatile unsigned long x = 0;
        for (;;) x = x + 1;
      }
      if (pid > 0) pids_.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let them get going
  }
  ~BusyProcesses() {
    for (pid_t pid : pids_) kill(pid, SIGKILL);
    for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
  }
  size_t size() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
};

int contended_repetitions(const LatencyResult& result) {
  int contended = 0;
  for (const RepetitionUsage& usage : result.usage) {
    contended += !contention_reason(usage, ContentionPolicy()).empty();
  }
  return contended;
}

LatencyResult measure_spin(int threads) {
  LatencyOptions options;
  options.threads = threads;
  options.min_time_s = 0.2;
  options.warmup_s = 0.05;
  options.repetitions = 5;
  return measure_latency("spin", spin_1ms, options);
}

TEST_CASE("repetitions measured while other processes hold the cores are flagged, later ones not") {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  {
    // One more busy process than cores: this thread gets at most cores / (cores + 2) of one.
    BusyProcesses busy(cores + 1);
    REQUIRE(busy.size() == cores + 1);
    LatencyResult result = measure_spin(1);
    REQUIRE(result.usage.size() == 5);
    CHECK(contended_repetitions(result) >= 4);
    for (const RepetitionUsage& usage : result.usage) {
      CHECK(usage.cpu_per_thread < 0.85);
      CHECK(usage.other_runnable >= 1);
    }
  }
  // Quiet again: after a burst, a virtual machine's hypervisor may hold back its CPUs for a
  // while (steal), which the check rightly flags; the machine gets a few seconds to settle.
  LatencyResult quiet = measure_spin(1);
  for (int attempt = 1; attempt < 6 && contended_repetitions(quiet) > 0; ++attempt) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    quiet = measure_spin(1);
  }
  REQUIRE(quiet.usage.size() == 5);
  CHECK(contended_repetitions(quiet) == 0);
  for (const RepetitionUsage& usage : quiet.usage) {
    INFO(contention_reason(usage, ContentionPolicy()));
    CHECK(usage.cpu_per_thread > 0.85);
    CHECK(usage.threads == 1);
    CHECK(usage.wall_s > 0.15);  // one repetition: min_time_s of 1 ms calls
    CHECK(usage.steal_fraction >= 0);
  }
}

TEST_CASE("a repetition is judged by CPU time per thread, then by involuntary switches") {
  ContentionPolicy policy;
  RepetitionUsage usage;
  usage.threads = 2;
  usage.wall_s = 1.0;
  usage.cpu_s = 1.96;
  usage.cpu_per_thread = 0.98;
  usage.involuntary_switches = 60;  // 30 per thread and second: a quiet machine's background
  CHECK(contention_reason(usage, policy).empty());
  usage.involuntary_switches = 500;
  CHECK(contention_reason(usage, policy) ==
        "250 involuntary context switches per thread and second > 100");
  usage.involuntary_switches = 60;
  usage.steal_fraction = 0.2;
  CHECK(contention_reason(usage, policy) == "the hypervisor took 20% of the CPUs' time (steal) > 5%");
  usage.involuntary_switches = 500;
  usage.cpu_per_thread = 0.5;
  CHECK(contention_reason(usage, policy) == "CPU time per thread 0.50 of wall time < 0.85");
  RepetitionUsage back = repetition_usage_from_json(to_json(usage));
  CHECK(back.cpu_per_thread == 0.5);
  CHECK(back.involuntary_switches == 500);
  CHECK(back.threads == 2);
  CHECK(back.steal_fraction == 0.2);
}

}  // namespace
}  // namespace qb

#include "eval/isolated_latency.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

#include "base/atomic_file.h"
#include "base/read_file.h"
#include "eval/onednn_isa.h"
#include "quant/inspect.h"
#include "tools/cpp/runfiles/runfiles.h"

extern char** environ;

namespace qb {

namespace fs = std::filesystem;

const std::vector<std::string>& latency_runtimes() {
  static const std::vector<std::string> runtimes = {"interpreter", "torchscript"};
  return runtimes;
}

nlohmann::json to_json(const ProbeRequest& r) {
  return {{"name", r.name},
          {"model", r.model},
          {"input", r.input},
          {"threads", r.latency.threads},
          {"min_time_s", r.latency.min_time_s},
          {"warmup_s", r.latency.warmup_s},
          {"repetitions", r.latency.repetitions},
          {"engine", r.engine},
          {"isa", r.isa},
          {"runtime", r.runtime},
          {"reference_model", r.reference_model},
          {"sqnr_input", r.sqnr_input}};
}

ProbeRequest probe_request_from_json(const nlohmann::json& j) {
  ProbeRequest r;
  r.name = j.at("name").get<std::string>();
  r.model = j.at("model").get<std::string>();
  r.input = j.at("input").get<std::string>();
  r.latency.threads = j.at("threads").get<int>();
  r.latency.min_time_s = j.at("min_time_s").get<double>();
  r.latency.warmup_s = j.at("warmup_s").get<double>();
  r.latency.repetitions = j.at("repetitions").get<int>();
  r.engine = j.at("engine").get<std::string>();
  r.isa = j.at("isa").get<std::string>();
  r.runtime = j.at("runtime").get<std::string>();
  r.reference_model = j.at("reference_model").get<std::string>();
  r.sqnr_input = j.at("sqnr_input").get<std::string>();
  return r;
}

nlohmann::json to_json(const ProbeResult& r) {
  nlohmann::json usage = nlohmann::json::array();
  for (const RepetitionUsage& u : r.timing.usage) usage.push_back(to_json(u));
  return {{"repetitions_ms", r.timing.repetitions_ms},
          {"usage", usage},
          {"google_benchmark", r.timing.google_benchmark},
          {"onednn_isa", r.onednn_isa},
          {"output_sqnr_db", r.output_sqnr_db ? sqnr_to_json(*r.output_sqnr_db) : nlohmann::json()}};
}

ProbeResult probe_result_from_json(const nlohmann::json& j) {
  ProbeResult r;
  r.timing = summarize_latency(j.at("repetitions_ms").get<std::vector<double>>());
  for (const nlohmann::json& u : j.at("usage")) r.timing.usage.push_back(repetition_usage_from_json(u));
  r.timing.google_benchmark = j.at("google_benchmark");
  r.onednn_isa = j.at("onednn_isa").get<std::string>();
  const nlohmann::json& sqnr = j.at("output_sqnr_db");
  if (!sqnr.is_null()) r.output_sqnr_db = sqnr_from_json(sqnr);
  return r;
}

namespace {

// This process's environment with ONEDNN_MAX_CPU_ISA set to cap oneDNN at `isa`.
std::vector<std::string> probe_environment(const std::string& isa) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry; ++entry) {
    std::string text = *entry;
    if (!isa.empty() && (text.rfind("ONEDNN_MAX_CPU_ISA=", 0) == 0 ||
                         text.rfind("DNNL_MAX_CPU_ISA=", 0) == 0)) {
      continue;
    }
    env.push_back(text);
  }
  if (!isa.empty()) env.push_back("ONEDNN_MAX_CPU_ISA=" + onednn_max_cpu_isa_value(isa));
  return env;
}

}  // namespace

ProbeResult run_probe(const std::string& probe, const ProbeRequest& request) {
  // The request and the result travel as files beside the model; the probe's stderr is
  // kept for its error message.
  const std::string base = request.model + ".probe." + std::to_string(::getpid());
  const std::string request_path = base + ".request.json";
  const std::string result_path = base + ".result.json";
  const std::string errors_path = base + ".stderr";
  write_file_atomically(request_path, to_json(request).dump());
  fs::remove(result_path);

  std::vector<std::string> args = {probe, request_path, result_path};
  std::vector<std::string> env = probe_environment(request.isa);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, errors_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, probe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    fs::remove(request_path);
    throw std::runtime_error("cannot start the latency probe " + probe + ": " + std::strerror(spawned));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string errors = read_file(errors_path).value_or("");
  const std::string result_text = read_file(result_path).value_or("");
  for (const std::string& path : {request_path, result_path, errors_path}) fs::remove(path);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string why = WIFSIGNALED(status) ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                          : "exited with status " + std::to_string(WEXITSTATUS(status));
    std::string message = errors;
    while (!message.empty() && message.back() == '\n') message.pop_back();
    throw std::runtime_error("the latency probe " + why + (message.empty() ? "" : ": " + message));
  }
  return probe_result_from_json(nlohmann::json::parse(result_text));
}

std::string find_latency_probe(const std::string& argv0) {
  if (const char* env = std::getenv("QB_LATENCY_PROBE")) return env;
  std::string error;
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles(
      argv0.empty() ? bazel::tools::cpp::runfiles::Runfiles::CreateForTest(&error)
                    : bazel::tools::cpp::runfiles::Runfiles::Create(argv0, &error));
  if (runfiles) {
    const std::string path = runfiles->Rlocation("quantbench/eval/latency_probe");
    if (!path.empty() && fs::exists(path)) return path;
  }
  // A binary started from bazel-bin without its runfiles: bazel-bin/<package>/<name>.
  if (!argv0.empty()) {
    const fs::path beside = fs::path(argv0).parent_path().parent_path() / "eval" / "latency_probe";
    if (fs::exists(beside)) return beside.string();
  }
  throw std::runtime_error(
      "cannot find the latency probe (eval/latency_probe): build it with "
      "`bazel build //eval:latency_probe`, or set QB_LATENCY_PROBE to its path");
}

}  // namespace qb

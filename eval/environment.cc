#include "eval/environment.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <opencv2/core/version.hpp>
#include <torch/version.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace qb {

namespace {

// First line of a command's output, or "" when it fails.
std::string command_output(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>/dev/null").c_str(), "r"),
                                             pclose);
  if (!pipe) return "";
  std::string out;
  std::array<char, 256> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe.get())) out += buffer.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string cpuinfo_field(const std::string& field) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string simd_flags(const std::string& all_flags) {
  std::istringstream in(all_flags);
  std::string flag, kept;
  while (in >> flag) {
    if (flag.rfind("avx", 0) == 0 || flag.rfind("sse4", 0) == 0 || flag == "fma" ||
        flag.find("vnni") != std::string::npos || flag == "amx_int8") {
      kept += (kept.empty() ? "" : " ") + flag;
    }
  }
  return kept;
}

}  // namespace

Environment capture_environment(const std::string& source_dir) {
  Environment env;
  std::string git = "git -C '" + source_dir + "' ";
  env.git_revision = command_output(git + "rev-parse HEAD");
  if (env.git_revision.empty()) env.git_revision = "unknown";
  env.git_dirty = !command_output(git + "status --porcelain --untracked-files=no").empty();
  env.libtorch_version = TORCH_VERSION;
  env.opencv_version = CV_VERSION;
  for (auto engine : at::globalContext().supportedQEngines()) {
    if (engine == at::QEngine::NoQEngine) continue;
    env.quantized_engines += (env.quantized_engines.empty() ? "" : ",") + c10::toString(engine);
  }
  env.cpu_model = cpuinfo_field("model name");
  env.cpu_flags = simd_flags(cpuinfo_field("flags"));
  env.cores = static_cast<int>(std::thread::hardware_concurrency());
  env.intra_op_threads = at::get_num_threads();
  std::array<char, 256> host{};
  gethostname(host.data(), host.size() - 1);
  env.hostname = host.data();
  env.date_utc = utc_now();
  return env;
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::array<char, 32> date{};
  std::strftime(date.data(), date.size(), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return date.data();
}

std::string machine_fingerprint(const Environment& env) {
  std::string slug;
  for (char c : env.cpu_model) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte)) {
      slug += static_cast<char>(std::tolower(byte));
    } else if (!slug.empty() && slug.back() != '-') {
      slug += '-';
    }
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  uint32_t hash = 2166136261u;
  for (char c : env.cpu_flags) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08x", hash);
  return slug + "-" + std::to_string(env.cores) + "c-torch" + env.libtorch_version + "-" + hex;
}

nlohmann::json to_json(const Environment& env) {
  return {{"git_revision", env.git_revision},         {"git_dirty", env.git_dirty},
          {"libtorch_version", env.libtorch_version}, {"opencv_version", env.opencv_version},
          {"quantized_engines", env.quantized_engines}, {"cpu_model", env.cpu_model},
          {"cpu_flags", env.cpu_flags},               {"cores", env.cores},
          {"intra_op_threads", env.intra_op_threads}, {"hostname", env.hostname},
          {"date_utc", env.date_utc},                 {"fingerprint", machine_fingerprint(env)}};
}

Environment environment_from_json(const nlohmann::json& json) {
  Environment env;
  env.git_revision = json.value("git_revision", "");
  env.git_dirty = json.value("git_dirty", false);
  env.libtorch_version = json.value("libtorch_version", "");
  env.opencv_version = json.value("opencv_version", "");
  env.quantized_engines = json.value("quantized_engines", "");
  env.cpu_model = json.value("cpu_model", "");
  env.cpu_flags = json.value("cpu_flags", "");
  env.cores = json.value("cores", 0);
  env.intra_op_threads = json.value("intra_op_threads", 0);
  env.hostname = json.value("hostname", "");
  env.date_utc = json.value("date_utc", "");
  return env;
}

}  // namespace qb

#include "experiments/records.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace qb {

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<nlohmann::json> parse_lines(const std::string& path, const std::string& text) {
  std::vector<nlohmann::json> records;
  size_t start = 0;
  int line = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line;
    const std::string content = text.substr(start, end - start);
    if (!content.empty()) {
      try {
        records.push_back(nlohmann::json::parse(content));
      } catch (const nlohmann::json::parse_error& e) {
        throw std::runtime_error(path + ":" + std::to_string(line) +
                                 ": not a JSON record: " + e.what());
      }
    }
    start = end + 1;
  }
  return records;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

std::vector<nlohmann::json> measured_only(const std::vector<nlohmann::json>& records) {
  std::vector<nlohmann::json> out;
  for (const nlohmann::json& record : records) {
    if (!is_failure(record)) out.push_back(record);
  }
  return out;
}

std::vector<nlohmann::json> latest_measured(const std::vector<nlohmann::json>& records) {
  std::map<std::string, size_t> index;
  std::vector<nlohmann::json> out;
  for (const nlohmann::json& record : measured_only(records)) {
    auto [it, added] = index.emplace(record.at("config_hash").get<std::string>(), out.size());
    if (added) {
      out.push_back(record);
    } else {
      out[it->second] = record;
    }
  }
  return out;
}

std::vector<nlohmann::json> read_records(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  std::string text = read_all(path);
  size_t last_newline = text.rfind('\n');
  text.resize(last_newline == std::string::npos ? 0 : last_newline + 1);
  return parse_lines(path, text);
}

RecordLog::RecordLog(std::string path) : path_(std::move(path)) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  // Two sweeps appending to one run would interleave and repeat points.
  const std::string lock = path_ + ".lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail(lock, "cannot open the lock file");
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    throw std::runtime_error(path_ + ": another sweep is writing this run; wait for it, or "
                                     "use another --run");
  }
  if (std::filesystem::exists(path_)) {
    const std::string text = read_all(path_);
    size_t last_newline = text.rfind('\n');
    size_t complete = last_newline == std::string::npos ? 0 : last_newline + 1;
    if (complete < text.size()) {
      std::cerr << path_ << ": dropping an incomplete last record (" << text.size() - complete
                << " bytes; the run writing it was interrupted)\n";
      if (::truncate(path_.c_str(), static_cast<off_t>(complete)) != 0) fail(path_, "truncate");
    }
    records_ = parse_lines(path_, text.substr(0, complete));
  }
  for (const nlohmann::json& record : records_) {
    if (record.contains("config_hash")) hashes_.insert(record["config_hash"].get<std::string>());
  }
}

RecordLog::~RecordLog() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void RecordLog::append(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail(path_, "cannot open for appending");
  // One write() of the whole line: O_APPEND makes it land after every earlier record.
  ssize_t written = ::write(fd, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size()) || ::fsync(fd) != 0) {
    ::close(fd);
    fail(path_, "cannot append a record");
  }
  ::close(fd);
  records_.push_back(record);
  if (record.contains("config_hash")) hashes_.insert(record["config_hash"].get<std::string>());
}

}  // namespace qb

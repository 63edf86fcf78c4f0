#include "experiments/record_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <stdexcept>

#include "base/atomic_file.h"
#include "base/read_file.h"

namespace qb {

namespace {

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

std::vector<nlohmann::json> read_records(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  std::string text = read_file(path).value_or("");
  size_t last_newline = text.rfind('\n');
  text.resize(last_newline == std::string::npos ? 0 : last_newline + 1);
  return parse_lines(path, text);
}

std::vector<Record> read_typed_records(const std::string& path) {
  std::vector<Record> records;
  int line = 0;
  for (const nlohmann::json& json : read_records(path)) {
    ++line;
    try {
      records.push_back(record_from_json(json));
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ":" + std::to_string(line) + ": not a sweep record: " + e.what());
    }
  }
  return records;
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
  try {
    if (std::filesystem::exists(path_)) {
      const std::string text = read_file(path_).value_or("");
      size_t last_newline = text.rfind('\n');
      size_t complete = last_newline == std::string::npos ? 0 : last_newline + 1;
      if (complete < text.size()) {
        std::cerr << path_ << ": dropping an incomplete last record (" << text.size() - complete
                  << " bytes; the run writing it was interrupted)\n";
        if (::truncate(path_.c_str(), static_cast<off_t>(complete)) != 0) fail(path_, "truncate");
      }
    }
    records_ = read_typed_records(path_);
  } catch (...) {
    ::close(lock_fd_);  // the destructor does not run for a constructor that throws
    throw;
  }
  for (const Record& record : records_) {
    if (!record.failed()) measured_.insert({record.config_hash, record.part});
  }
}

bool RecordLog::contains(const std::string& config_hash, RecordPart part) const {
  auto has = [&](RecordPart p) { return measured_.count({config_hash, p}) > 0; };
  if (has(RecordPart::kAll) || has(part)) return true;
  return part == RecordPart::kAll && has(RecordPart::kAccuracy) && has(RecordPart::kLatency);
}

RecordLog::~RecordLog() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

void RecordLog::append(const Record& record) {
  append_durably(path_, to_json(record).dump() + "\n");
  records_.push_back(record);
  if (!record.failed()) measured_.insert({record.config_hash, record.part});
}

}  // namespace qb

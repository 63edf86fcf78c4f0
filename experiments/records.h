#pragma once
// records.jsonl: one JSON record per finished sweep point. Each record is appended with a single
// write() and flushed to disk before the next point starts, so an interrupted sweep (Ctrl-C,
// kill, power loss) loses at most the point in flight; a torn last line is dropped on reopening.

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace qb {

/// Whether `record` reports a point that failed (it has "error" instead of measurements and
/// "failed_config_hash" instead of "config_hash", so a rerun tries the point again).
inline bool is_failure(const nlohmann::json& record) { return record.contains("error"); }

/// The measured records of `records`, without failures.
std::vector<nlohmann::json> measured_only(const std::vector<nlohmann::json>& records);
/// measured_only(records) with one record per config_hash, the latest, in first-seen order
/// (shards, reruns and --force may record a point more than once).
std::vector<nlohmann::json> latest_measured(const std::vector<nlohmann::json>& records);

/// Reads every record of a records.jsonl file; a malformed line other than a torn last line is
/// a std::runtime_error naming the file and line. A missing file has no records.
std::vector<nlohmann::json> read_records(const std::string& path);

/// An append-only records file.
class RecordLog {
 public:
  /// Opens (creating) `path` and locks it for this process; a torn last line (no newline: the
  /// write was interrupted) is cut off and reported on stderr. Throws std::runtime_error naming
  /// the file when another RecordLog (in any process) has it open, or for any other problem.
  explicit RecordLog(std::string path);
  ~RecordLog();
  RecordLog(const RecordLog&) = delete;
  RecordLog& operator=(const RecordLog&) = delete;

  /// The records already in the file, in order.
  const std::vector<nlohmann::json>& records() const { return records_; }
  /// Whether a record with this "config_hash" is present.
  bool contains(const std::string& config_hash) const { return hashes_.count(config_hash) > 0; }
  /// Appends `record` as one line and syncs it to disk.
  void append(const nlohmann::json& record);

 private:
  std::string path_;
  int lock_fd_ = -1;  // holds an flock on path_ + ".lock" while the log is open
  std::vector<nlohmann::json> records_;
  std::set<std::string> hashes_;
};

}  // namespace qb

#pragma once
// records.jsonl: one JSON record per finished sweep point. Each record is appended with a single
// write() and flushed to disk before the next point starts, so an interrupted sweep (Ctrl-C,
// kill, power loss) loses at most the point in flight; a torn last line is dropped on reopening.

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

#include "experiments/record.h"

namespace qb {

/// Reads every line of a JSON-lines file (records.jsonl, a history); a malformed line other
/// than a torn last line is a std::runtime_error naming the file and line. A missing file has
/// no lines.
std::vector<nlohmann::json> read_records(const std::string& path);
/// read_records(path) as typed records; a record that is not one is a std::runtime_error
/// naming the file and line.
std::vector<Record> read_typed_records(const std::string& path);

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
  const std::vector<Record>& records() const { return records_; }
  /// Whether `part` of the point with this config_hash is measured: by a record of that part
  /// or of the whole point (for the whole point: also by both of its parts).
  bool contains(const std::string& config_hash, RecordPart part = RecordPart::kAll) const;
  /// Appends `record` as one line and syncs it to disk.
  void append(const Record& record);

 private:
  std::string path_;
  int lock_fd_ = -1;  // holds an flock on path_ + ".lock" while the log is open
  std::vector<Record> records_;
  std::set<std::pair<std::string, RecordPart>> measured_;  // (config_hash, part)
};

}  // namespace qb

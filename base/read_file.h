#pragma once
// Reading a whole file into memory: the counterpart of atomic_file.h.

#include <optional>
#include <string>

namespace qb {

/// The whole content of `path`; nullopt when it cannot be opened (errno says why). A read
/// error part-way ends the content early.
std::optional<std::string> read_file(const std::string& path);

}  // namespace qb

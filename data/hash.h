#pragma once
// FNV-1a 64: a fast, stable hash for fingerprints and content identity (not for security).
// Stable across machines and versions, so fingerprints in result records stay comparable.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace qb {

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;

/// FNV-1a 64 of `size` bytes, extending `hash` (so pieces can be hashed one after another).
inline uint64_t fnv1a(const void* data, size_t size, uint64_t hash = kFnvOffset) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ULL;
  }
  return hash;
}

/// FNV-1a 64 of a string's bytes, extending `hash`.
inline uint64_t fnv1a(std::string_view text, uint64_t hash = kFnvOffset) {
  return fnv1a(text.data(), text.size(), hash);
}

/// 16 lower-case hex digits, as fingerprints are written in records.
inline std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace qb

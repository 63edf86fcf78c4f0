#pragma once
// How error messages name the type of a TOML value ("a string", "a table"...),
// shared by every reader of TOML files (qconfig mappings, experiment files).

#include <toml++/toml.h>

#include <string>

namespace qb {

/// The value's TOML type with its article, for "must be X, got Y" messages.
inline std::string describe_toml_value(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

}  // namespace qb

// The INI walk behind parse_config (config.hpp), on text already checked for size, NUL bytes and
// UTF-8: inih fed one line at a time (long values around its line buffer), each value checked
// against config_keys.hpp. Every problem is kept with its line, none stops the walk.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"

namespace mfa {

struct ParsedConfig {
  Config config;
  std::vector<ConfigProblem> problems;
};

// strict: unknown sections and keys are fatal problems.
ParsedConfig walk_config_text(std::string_view text, const std::string& file, bool strict);

}  // namespace mfa

// mfad.conf's keys (CONTRACT.md "mfad.conf"): for each, its section, its name, and how its value is
// checked and stored; and the rules between keys. config_parser.cpp walks a file with them.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"

namespace mfa {

// Checks one value and stores it in the config, or returns the problem (for people).
using ConfigKeyApply = std::function<std::optional<std::string>(Config&, std::string_view)>;

struct ConfigKey {
  const char* section;
  const char* key;
  ConfigKeyApply apply;
};

// Every key mfad knows.
const std::vector<ConfigKey>& config_keys();
bool is_config_section(std::string_view section);

// A rule between keys that a config breaks; section and key name the key that decides.
struct BrokenConfigRule {
  const char* section;
  const char* key;
  std::string message;
};
std::vector<BrokenConfigRule> check_key_combinations(const Config& config);

}  // namespace mfa

// mfad.conf's keys (mfad.conf(5), packaging/man/mfad.conf.5): for each, its section, its name, and
// how its value is checked and stored; and the rules between keys. config_parser.cpp walks a file
// with them.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/dbus_names.hpp"
#include "core/config.hpp"

namespace mfa {

// What is wrong with a value, for people. Fatal, unless tolerated: a value an older mfad accepted
// and this one no longer does is ignored with a warning at start, so that the daemon still starts
// on the config it ran with (an error at --check-config, as unknown keys are).
struct ConfigValueProblem {
  ConfigValueProblem(std::string text) : message(std::move(text)) {}  // NOLINT: fatal by default
  static ConfigValueProblem tolerated(std::string text) {
    ConfigValueProblem p(std::move(text));
    p.is_tolerated = true;
    return p;
  }
  std::string message;
  bool is_tolerated = false;
};

// Checks one value and stores it in the config, or returns the problem.
using ConfigKeyApply = std::function<std::optional<ConfigValueProblem>(Config&, std::string_view)>;

struct ConfigKey {
  const char* section;
  const char* key;
  ConfigKeyApply apply;
};

// The longest enrollment notice, inline or in its file (docs/admin-guide.md).
inline constexpr size_t kMaxEnrollmentNotice = dbus::kMaxEnrollmentNoticeLength;

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

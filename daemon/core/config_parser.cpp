// The INI walk behind parse_config: inih fed one checked line at a time, each value checked
// against config_keys.hpp, every problem kept with its line.
#include "core/config_parser.hpp"

#include <ini.h>

#include <cstring>
#include <map>
#include <utility>

#include "core/config_keys.hpp"

namespace mfa {
namespace {

constexpr size_t kMaxValue = 4096;
// A key, '=', a value of kMaxValue bytes and a comment fit.
constexpr size_t kMaxLine = kMaxValue + 512;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

class IniWalk {
 public:
  IniWalk(std::string_view text, std::string file, bool strict)
      : text_(text), file_(std::move(file)), strict_(strict) {}

  void run() {
    int rc = ini_parse_stream(&IniWalk::read_line, this, &IniWalk::handle, this);
    // The reader hands inih only lines it can parse; anything left is reported here.
    if (rc > 0 && !has_problem_at(rc))
      add(rc, "", "", "syntax error", true);
    if (rc < 0)
      add(0, "", "", "cannot parse the file", true);
    cross_check();
  }

  Config& config() { return config_; }
  std::vector<ConfigProblem>& problems() { return problems_; }

 private:
  // inih's reader: one line per call. Lines are left-trimmed (so an indented key is never taken
  // for a continuation line), checked, and long values go around inih's 200-byte line buffer.
  static char* read_line(char* str, int num, void* stream) {
    auto* self = static_cast<IniWalk*>(stream);
    if (self->pos_ >= self->text_.size())
      return nullptr;
    size_t end = self->text_.find('\n', self->pos_);
    if (end == std::string_view::npos)
      end = self->text_.size();
    std::string_view line = self->text_.substr(self->pos_, end - self->pos_);
    self->pos_ = end + 1;
    self->line_++;
    self->long_line_ = 0;
    std::string out = self->check_line(trim(line), static_cast<size_t>(num));
    out += '\n';
    // inih's buffer is not instrumented: never hand it more than it holds, whatever the above.
    if (out.size() + 1 > static_cast<size_t>(num))
      out = "\n";
    std::memcpy(str, out.data(), out.size());
    str[out.size()] = '\0';
    return str;
  }

  // What inih gets for a line (at most limit - 2 bytes).
  std::string check_line(std::string_view line, size_t limit) {
    if (line.empty() || line.front() == ';' || line.front() == '#')
      return "";
    if (line.size() > kMaxLine) {
      add(line_, section_, "", "line longer than " + std::to_string(kMaxLine) + " bytes", true);
      return "";
    }
    if (line.front() == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos) {
        add(line_, "", "", "section header without ']'", true);
        section_ = "";
        broken_section_ = true;
        return "[]";  // keys up to the next valid section are reported as unknown
      }
      section_ = std::string(line.substr(1, close - 1));
      broken_section_ = false;
      if (!is_config_section(section_)) {
        add(line_, section_, "", "unknown section", strict_);
      }
      if (close + 3 > limit)
        return "[]";  // with its newline and NUL
      return std::string(line.substr(0, close + 1));
    }
    size_t sep = line.find_first_of("=:");
    if (sep == std::string_view::npos || sep == 0) {
      add(line_, section_, "", "expected Key=Value, a [Section] or a comment", true);
      return "";
    }
    if (line.size() + 2 <= limit)
      return std::string(line);
    std::string_view key = trim(line.substr(0, sep));
    if (key.size() + 16 > limit) {
      add(line_, section_, "", "key too long", true);
      return "";
    }
    long_value_ = std::string(line.substr(sep + 1));
    long_line_ = line_;
    return std::string(key) + "=#long";
  }

  static int handle(void* user, const char* section, const char* name, const char* value) {
    auto* self = static_cast<IniWalk*>(user);
    if (!section || !name || !value)
      return 1;
    std::string_view v = value;
    std::string long_value;
    if (self->long_line_ == self->line_) {
      // What inih does to a value: cut an inline comment (';' after whitespace) and trim.
      std::string_view raw = self->long_value_;
      for (size_t i = 1; i < raw.size(); ++i) {
        if (raw[i] == ';' && (raw[i - 1] == ' ' || raw[i - 1] == '\t')) {
          raw = raw.substr(0, i);
          break;
        }
      }
      long_value = std::string(trim(raw));
      v = long_value;
    }
    self->apply(self->section_, name, v);
    return 1;
  }

  void apply(const std::string& section, const std::string& key, std::string_view value) {
    if (section.empty() && !broken_section_) {
      add(line_, "", key, "key outside any [Section]", true);
      return;
    }
    if (!is_config_section(section))
      return;  // reported once, at the section header
    if (value.size() > kMaxValue) {
      add(line_, section, key, "value longer than " + std::to_string(kMaxValue) + " bytes", true);
      return;
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
        add(line_, section, key, "value contains control characters", true);
        return;
      }
    }
    for (const auto& spec : config_keys()) {
      if (section == spec.section && key == spec.key) {
        if (auto problem = spec.apply(config_, value)) {
          add(line_, section, key, std::move(problem->message), !problem->is_tolerated || strict_);
        } else {
          key_lines_[section + "." + key] = line_;
        }
        return;
      }
    }
    add(line_, section, key, "unknown key", strict_);
  }

  // Rules between keys; problems point at the key that decides.
  void cross_check() {
    for (auto& broken : check_key_combinations(config_)) {
      add(line_of(std::string(broken.section) + "." + broken.key), broken.section, broken.key,
          std::move(broken.message), true);
    }
  }

  int line_of(const std::string& key) const {
    auto it = key_lines_.find(key);
    return it == key_lines_.end() ? 0 : it->second;
  }

  bool has_problem_at(int line) const {
    for (const auto& p : problems_) {
      if (p.line == line)
        return true;
    }
    return false;
  }

  void add(int line, std::string section, std::string key, std::string message, bool fatal) {
    ConfigProblem p;
    p.file = file_;
    p.line = line;
    p.section = std::move(section);
    p.key = std::move(key);
    p.message = std::move(message);
    p.fatal = fatal;
    problems_.push_back(std::move(p));
  }

  std::string_view text_;
  std::string file_;
  bool strict_;
  size_t pos_ = 0;
  int line_ = 0;
  std::string section_;
  bool broken_section_ = false;
  int long_line_ = 0;
  std::string long_value_;
  std::map<std::string, int> key_lines_;
  Config config_;
  std::vector<ConfigProblem> problems_;
};

}  // namespace

ParsedConfig walk_config_text(std::string_view text, const std::string& file, bool strict) {
  IniWalk walk(text, file, strict);
  walk.run();
  return ParsedConfig{std::move(walk.config()), std::move(walk.problems())};
}

}  // namespace mfa

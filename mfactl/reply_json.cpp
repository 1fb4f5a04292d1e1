#include "mfactl/reply_json.hpp"

#include <algorithm>
#include <cstdio>

#include "common/secure_buffer.hpp"
#include "mfactl/format.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

// Recursively erases every string in j (the JSON copies of secrets) before it is freed.
void erase_strings(json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    secure_erase(s.data(), s.size());
  } else if (j.is_structured()) {
    for (auto& v : j)
      erase_strings(v);
  }
}

}  // namespace

std::string str_field(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint64_t num_field(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end())
    return 0;
  if (it->is_number_unsigned())
    return it->get<uint64_t>();
  if (it->is_number_integer())
    return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
  return 0;
}

std::vector<std::string> list_field(const json& o, const char* key) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || !it->is_array())
    return out;
  for (const auto& v : *it) {
    if (v.is_string())
      out.push_back(v.get<std::string>());
  }
  return out;
}

std::string display_field(const json& o, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = o.find(k);
    if (it == o.end())
      continue;
    if (it->is_string())
      return it->get<std::string>().empty() ? "-" : it->get<std::string>();
    if (it->is_number())
      return it->dump();
    if (it->is_boolean())
      return it->get<bool>() ? "yes" : "no";
  }
  return "-";
}

std::string time_field(const json& o, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = o.find(k);
    if (it == o.end() || !it->is_number())
      continue;
    uint64_t v = num_field(o, k);
    if (v == 0)
      return "-";
    // Session times may be seconds or microseconds: no plausible second count is this large.
    return v > 100000000000ULL ? format_unix_time_usec(static_cast<int64_t>(v))
                               : format_unix_time(static_cast<int64_t>(v));
  }
  return "-";
}

void print_json(const json& j) {
  std::string out = j.dump(2, ' ', false, json::error_handler_t::replace);
  out += '\n';
  (void)fwrite(out.data(), 1, out.size(), stdout);
}

void print_secret_json(json& j) {
  std::string out = j.dump(2, ' ', false, json::error_handler_t::replace);
  out += '\n';
  (void)fwrite(out.data(), 1, out.size(), stdout);
  (void)fflush(stdout);
  secure_erase(out.data(), out.size());
  erase_strings(j);
}

void print_ok_json() {
  print_json(json{{"ok", true}});
}

}  // namespace mfa::ctl

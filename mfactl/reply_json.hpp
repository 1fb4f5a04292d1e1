// mfad's replies as JSON (client.hpp) and mfactl's --json output: fields read without throwing
// on a daemon's missing or mistyped key, and JSON documents printed, erased after printing when
// they hold secrets.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mfa::ctl {

// A string field; "" when missing or not a string.
std::string str_field(const nlohmann::json& o, const char* key);
// A number field; 0 when missing, negative or not a number.
uint64_t num_field(const nlohmann::json& o, const char* key);
// The strings of an array field; empty when missing.
std::vector<std::string> list_field(const nlohmann::json& o, const char* key);
// The first of several candidate keys that is present, as display text; "-" for none.
std::string display_field(const nlohmann::json& o, std::initializer_list<const char*> keys);
// The first of several candidate keys that is a time (seconds or microseconds), as display text.
std::string time_field(const nlohmann::json& o, std::initializer_list<const char*> keys);

void print_json(const nlohmann::json& j);
// Prints j, then erases the printed text and every string in j.
void print_secret_json(nlohmann::json& j);
// {"ok": true}
void print_ok_json();

}  // namespace mfa::ctl

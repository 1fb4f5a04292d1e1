// What mfad takes from a sentinel (fleet/sentinel.hpp): SENTINEL get-master-addr-by-name's answer
// is outside input, accepted only as an IP literal and a port, and `+switch-master` only as a hint
// about one master name. No server needed (tests/integration/test_fleet_sentinel.py has the real
// ones).
#include <string>

#include "fleet/sentinel.hpp"
// cmocka last: its fail() macro must not meet a standard header.
#include "cmocka_cpp.hpp"

using namespace mfa;

namespace {

RedisReply str(std::string s) {
  RedisReply r;
  r.type = RedisReply::Type::kString;
  r.str = std::move(s);
  return r;
}

RedisReply pair(std::string host, std::string port) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  r.elements = {str(std::move(host)), str(std::move(port))};
  return r;
}

void test_an_address_and_port_are_taken(void**) {
  auto a = fleet::parse_master_address_reply(pair("127.0.0.1", "6380"), true);
  assert_true(a.ok());
  assert_string_equal(a->describe().c_str(), "rediss://127.0.0.1:6380");
  auto b = fleet::parse_master_address_reply(pair("::1", "6381"), false);
  assert_true(b.ok());
  assert_string_equal(b->describe().c_str(), "redis://[::1]:6381");
}

void test_anything_else_is_refused(void**) {
  RedisReply nil;
  assert_false(fleet::parse_master_address_reply(nil, true).ok());
  RedisReply error;
  error.type = RedisReply::Type::kError;
  error.str = "ERR unknown";
  assert_false(fleet::parse_master_address_reply(error, true).ok());
  const std::pair<const char*, const char*> bad[] = {
      {"redis.example.com", "6379"},  // a name: never resolved
      {"127.0.0.1", "0"},
      {"127.0.0.1", "65536"},
      {"127.0.0.1", "123456"},
      {"127.0.0.1", "63a9"},
      {"127.0.0.1", ""},
      {"", "6379"},
      {"127.0.0.1:6379", "6379"},
      {"127.0.0.1/x", "6379"},
      {"1.2.3.4.5", "6379"},
      {"[::1]", "6379"},
  };
  for (const auto& [host, port] : bad) {
    if (fleet::parse_master_address_reply(pair(host, port), true).ok())
      fprintf(stderr, "accepted %s %s\n", host, port);
    assert_false(fleet::parse_master_address_reply(pair(host, port), true).ok());
  }
  // A long string is refused before any parsing.
  assert_false(fleet::parse_master_address_reply(pair(std::string(100000, '1'), "1"), true).ok());
  RedisReply three = pair("127.0.0.1", "6379");
  three.elements.push_back(str("x"));
  assert_false(fleet::parse_master_address_reply(three, true).ok());
  RedisReply integer = pair("127.0.0.1", "6379");
  integer.elements[1].type = RedisReply::Type::kInteger;
  assert_false(fleet::parse_master_address_reply(integer, true).ok());
}

void test_switch_master_is_a_hint_about_one_name(void**) {
  assert_true(fleet::is_switch_master_of("mymaster 127.0.0.1 6380 127.0.0.1 6381", "mymaster"));
  assert_false(fleet::is_switch_master_of("other 127.0.0.1 6380 127.0.0.1 6381", "mymaster"));
  assert_false(fleet::is_switch_master_of("mymaster2 1 2 3 4", "mymaster"));
  assert_false(fleet::is_switch_master_of("mymaster", "mymaster"));
  assert_false(fleet::is_switch_master_of("", "mymaster"));
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_address_and_port_are_taken),
      cmocka_unit_test(test_anything_else_is_refused),
      cmocka_unit_test(test_switch_master_is_a_hint_about_one_name),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

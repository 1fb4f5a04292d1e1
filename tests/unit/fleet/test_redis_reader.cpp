// The reader mfad's Redis connections parse replies with (fleet/redis_client.hpp,
// bound_redis_reader): what one reply may declare is bounded, so that a broken or hostile server
// cannot make mfad allocate gigabytes with a few bytes (found by tests/fuzz/fuzz_resp.cpp:
// "*1700000000\r\n" asked hiredis for 13.6 GB at once). No server needed.
#include <hiredis/hiredis.h>

#include <string>

#include "fleet/redis_client.hpp"
// cmocka last: its fail() macro must not meet a standard header.
#include "cmocka_cpp.hpp"

using namespace mfa;

namespace {

struct Reader {
  redisReader* reader = redisReaderCreate();
  size_t total = 0;
  Reader() { bound_redis_reader(reader, &total); }
  ~Reader() { redisReaderFree(reader); }
  // REDIS_OK with *ret (null: more bytes wanted), or REDIS_ERR.
  int read(const std::string& bytes, RedisReply* ret) {
    assert_int_equal(redisReaderFeed(reader, bytes.data(), bytes.size()), REDIS_OK);
    void* raw = nullptr;
    int r = redisReaderGetReply(reader, &raw);
    if (raw != nullptr) {
      *ret = RedisReply::from(static_cast<redisReply*>(raw));
      freeReplyObject(raw);
    }
    return r;
  }
};

void test_an_absurd_array_length_is_refused(void**) {
  Reader r;
  RedisReply reply;
  assert_int_equal(r.read("*1700000000\r\n", &reply), REDIS_ERR);
  assert_int_equal(r.reader->err, REDIS_ERR_OOM);
}

// The bound counts nested arrays too, per reply: many arrays just under it are refused together.
void test_the_bound_is_on_the_whole_reply(void**) {
  Reader r;
  RedisReply reply;
  const std::string half = "*" + std::to_string(kMaxRedisReplyElements / 2) + "\r\n";
  assert_int_equal(r.read("*3\r\n" + half + half, &reply), REDIS_ERR);
  assert_int_equal(r.reader->err, REDIS_ERR_OOM);
}

// Ordinary replies, one after another, are read as before: the count starts again with each.
void test_ordinary_replies_are_read(void**) {
  Reader r;
  RedisReply reply;
  for (int i = 0; i < 3; ++i) {
    std::string bytes = "*2\r\n*2\r\n$2\r\nok\r\n:7\r\n$-1\r\n";
    assert_int_equal(r.read(bytes, &reply), REDIS_OK);
    assert_int_equal(static_cast<int>(reply.type), static_cast<int>(RedisReply::Type::kArray));
    assert_int_equal(reply.elements.size(), 2);
    assert_string_equal(reply.elements[0].elements[0].str.c_str(), "ok");
    assert_int_equal(reply.elements[0].elements[1].integer, 7);
    assert_true(reply.elements[1].is_nil());
  }
  assert_int_equal(r.read("+OK\r\n", &reply), REDIS_OK);
  assert_string_equal(reply.str.c_str(), "OK");
  // Exactly the bound, after all those: accepted (waiting for its elements).
  reply = RedisReply{};
  assert_int_equal(r.read("*" + std::to_string(kMaxRedisReplyElements) + "\r\n", &reply), REDIS_OK);
  assert_int_equal(r.reader->err, 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_an_absurd_array_length_is_refused),
      cmocka_unit_test(test_the_bound_is_on_the_whole_reply),
      cmocka_unit_test(test_ordinary_replies_are_read),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

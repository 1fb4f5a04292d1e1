// Redis replies as mfad reads them (daemon/fleet/redis_client.cpp): bytes off the socket, in
// whatever pieces the reads return, through hiredis's reader (the one redisAsyncContext owns,
// created with the default functions and bounded by bound_redis_reader), each reply copied by
// RedisReply::from and handed to every parser of a script's or a command's answer (fleet/keys.hpp,
// session_keys.hpp, sms_keys.hpp, sentinel.hpp) and to the record decoders. A hostile or broken
// Redis may send anything: no crash, no leak, and the copy is the reply.
//
// The input: one byte that picks the sizes of the pieces, then the byte stream.
#include <hiredis/hiredis.h>

#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

#include "fleet/keys.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/sentinel.hpp"
#include "fleet/session_keys.hpp"
#include "fleet/sms_keys.hpp"

namespace {

using mfa::RedisReply;

bool same(const redisReply* r, const RedisReply& copy) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return copy.str.size() == r->len && std::memcmp(copy.str.data(), r->str, r->len) == 0;
    case REDIS_REPLY_INTEGER:
      return copy.type == RedisReply::Type::kInteger && copy.integer == r->integer;
    case REDIS_REPLY_NIL:
      return copy.is_nil();
    case REDIS_REPLY_ARRAY:
      if (copy.type != RedisReply::Type::kArray || copy.elements.size() != r->elements)
        return false;
      for (size_t i = 0; i < r->elements; ++i) {
        if (!same(r->element[i], copy.elements[i]))
          return false;
      }
      return true;
    default:
      return false;
  }
}

// Everything mfad does with a reply, wherever it comes from; nothing may crash.
void parse_everything(const RedisReply& reply) {
  (void)mfa::fleet::parse_raw_load_reply(reply);
  (void)mfa::fleet::parse_register_reply(reply);
  (void)mfa::fleet::parse_sms_send_reply(reply);
  (void)mfa::fleet::parse_sms_code_reply(reply);
  (void)mfa::fleet::parse_sms_code_hash(reply);
  // A sentinel's answer: what it names is an IP address and a port, or nothing.
  for (bool tls : {false, true}) {
    auto primary = mfa::fleet::parse_master_address_reply(reply, tls);
    if (primary.ok() && (primary->host.empty() || primary->port <= 0 || primary->port > 65535 ||
                         primary->tls != tls || !primary->unix_path.empty()))
      abort();
  }
  (void)mfa::fleet::is_switch_master_of(reply.str, "mymaster");
  if (reply.type == RedisReply::Type::kArray) {
    (void)mfa::fleet::parse_limit_values(std::span<const RedisReply>(reply.elements));
    // Session listings (HGETALL and the list script), termination requests, factor hashes.
    for (size_t i = 0; i < reply.elements.size(); ++i) {
      const std::string& s = reply.elements[i].str;
      (void)mfa::fleet::decode_session(s);
      (void)mfa::fleet::decode_termination(s);
      (void)mfa::fleet::parse_hash_hex(s);
      if (i + 1 < reply.elements.size())
        (void)mfa::fleet::decode_factor(s, reply.elements[i + 1].str);
    }
  } else {
    (void)mfa::fleet::decode_session(reply.str);  // HGET of one session
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  uint32_t pieces = data[0] * 2654435761u;  // sizes of the reads: a little generator
  data++;
  size--;

  redisReader* reader = redisReaderCreate();
  if (reader == nullptr)
    abort();
  size_t elements = 0;
  mfa::bound_redis_reader(reader, &elements);
  size_t pos = 0;
  bool failed = false;
  while (pos < size && !failed) {
    pieces = pieces * 1103515245u + 12345u;
    size_t n = (data[-1] & 1) ? size - pos : 1 + (pieces >> 16) % 64;
    n = std::min(n, size - pos);
    if (redisReaderFeed(reader, reinterpret_cast<const char*>(data) + pos, n) != REDIS_OK)
      abort();  // feeding only fails for lack of memory
    pos += n;
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
        failed = true;  // a protocol error: mfad drops the connection
        if (reader->err == 0)
          abort();
        break;
      }
      if (raw == nullptr)
        break;  // more bytes wanted
      const auto* reply = static_cast<const redisReply*>(raw);
      RedisReply copy = RedisReply::from(reply);
      if (!same(reply, copy))
        abort();
      freeReplyObject(raw);
      parse_everything(copy);
    }
  }
  redisReaderFree(reader);
  return 0;
}

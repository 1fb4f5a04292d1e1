// RedisClient over TLS (rediss://, fleet/tls_stream.hpp) against a redis-server with --tls-port:
// what the integration tests do not reach with fleet traffic: a command and a reply far larger
// than one TLS record and the socket buffers (partial SSL_write, many SSL_read), commands
// pipelined before the loop runs, and a subscription's messages over TLS.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>

#include "common/crypto.hpp"
#include "fleet/tls_stream.hpp"
#include "fleet_test_support.hpp"

using namespace mfa;
using namespace mfa::test;

namespace {

RedisServer* g_tls = nullptr;
int g_port = 0;

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// A self-signed certificate for 127.0.0.1 (its own CA), then redis-server on a TLS port.
int tls_setup(void** /*state*/) {
  g_tls = new RedisServer;
  g_tls->dir = make_temp_dir();
  g_tls->socket = g_tls->dir + "/redis.sock";
  g_port = free_port();
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
      "-days 2 -subj /CN=redis -addext subjectAltName=IP:127.0.0.1 -keyout " +
      g_tls->dir + "/key.pem -out " + g_tls->dir + "/cert.pem 2>/dev/null";
  if (g_port <= 0 || std::system(cmd.c_str()) != 0)
    return -1;
  {
    std::ofstream conf(g_tls->dir + "/redis.conf");
    conf << "port 0\nbind 127.0.0.1\ntls-port " << g_port << "\ntls-cert-file " << g_tls->dir
         << "/cert.pem\ntls-key-file " << g_tls->dir << "/key.pem\ntls-ca-cert-file " << g_tls->dir
         << "/cert.pem\ntls-auth-clients no\nunixsocket " << g_tls->socket
         << "\nunixsocketperm 700\ndaemonize no\ndir " << g_tls->dir
         << "\nsave \"\"\nappendonly no\nrequirepass admin-only-9f2c\n"
         << "user mfad on >" << kRedisPassword << " ~mfad:* &mfad:* +@all -@admin -@dangerous\n";
  }
  g_tls->pid = fork();
  if (g_tls->pid == 0) {
    const std::string conf = g_tls->dir + "/redis.conf";
    const std::string log = g_tls->dir + "/redis.log";
    FILE* out = freopen(log.c_str(), "w", stdout);
    (void)out;
    execl("/usr/bin/redis-server", "redis-server", conf.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 500; ++i) {
    struct stat st;
    if (stat(g_tls->socket.c_str(), &st) == 0)
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

int tls_teardown(void** /*state*/) {
  stop_redis_server(g_tls);
  delete g_tls;
  return 0;
}

struct TlsLoop {
  sd_event* event = nullptr;
  std::unique_ptr<RedisClient> client;
  bool ready = false;

  TlsLoop() {
    assert_true(sd_event_new(&event) >= 0);
    RedisClientOptions o;
    auto address = parse_redis_address("rediss://127.0.0.1:" + std::to_string(g_port));
    assert_true(address.ok());
    o.address = *address;
    auto tls = make_redis_tls_context(RedisTlsFiles{g_tls->dir + "/cert.pem", "", ""});
    if (!tls.ok())
      fprintf(stderr, "%s\n", tls.error().message.c_str());
    assert_true(tls.ok());
    o.tls = *tls;
    o.user = "mfad";
    o.password = SecureString(kRedisPassword);
    o.timeout_usec = 10 * 1000 * 1000;  // a megabyte through TLS on a busy test machine
    auto c =
        RedisClient::create(event, std::move(o), [this](bool r, const std::string&) { ready = r; });
    assert_true(c.ok());
    client = std::move(c).value();
    assert_true(run_until([&] { return ready; }));
  }
  ~TlsLoop() {
    client.reset();
    sd_event_unref(event);
  }
  bool run_until(const std::function<bool()>& pred, int ms = 20000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end)
        return false;
      if (sd_event_run(event, 10 * 1000) < 0)
        return false;
    }
    return true;
  }
  Result<RedisReply> command(std::vector<std::string> args) {
    (void)sd_event_run(event, 0);
    std::optional<Result<RedisReply>> out;
    client->command(std::move(args), [&](Result<RedisReply> r) { out.emplace(std::move(r)); });
    assert_true(run_until([&] { return out.has_value(); }));
    return std::move(*out);
  }
};

void test_a_megabyte_each_way(void** /*state*/) {
  TlsLoop l;
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  auto set = l.command({"SET", "mfad:big", big});
  assert_true(set.ok());
  assert_string_equal(set->str.c_str(), "OK");
  auto get = l.command({"GET", "mfad:big"});
  assert_true(get.ok());
  assert_int_equal(get->str.size(), big.size());
  assert_true(get->str == big);
  // The connection is still in step afterwards.
  auto ping = l.command({"PING"});
  assert_true(ping.ok());
  assert_string_equal(ping->str.c_str(), "PONG");
}

void test_pipelined_replies_come_in_order(void** /*state*/) {
  TlsLoop l;
  (void)l.command({"DEL", "mfad:n"});
  std::vector<long long> got;
  for (int i = 0; i < 500; ++i) {
    l.client->command({"INCR", "mfad:n"},
                      [&](Result<RedisReply> r) { got.push_back(r.ok() ? r->integer : -1); });
  }
  assert_true(l.run_until([&] { return got.size() == 500; }));
  for (int i = 0; i < 500; ++i)
    assert_int_equal(got[static_cast<size_t>(i)], i + 1);
}

void test_subscription_over_tls(void** /*state*/) {
  TlsLoop subscriber;
  int subscribed = 0;
  std::vector<std::string> messages;
  subscriber.client->subscribe(
      "mfad:invalidate", [&] { ++subscribed; },
      [&](const std::string& m) { messages.push_back(m); });
  assert_true(subscriber.run_until([&] { return subscribed == 1; }));
  TlsLoop publisher;
  for (const char* m : {"one", "two", "three"}) {
    auto r = publisher.command({"PUBLISH", "mfad:invalidate", m});
    assert_true(r.ok());
    assert_int_equal(r->integer, 1);
  }
  assert_true(subscriber.run_until([&] { return messages.size() == 3; }));
  assert_string_equal(messages[0].c_str(), "one");
  assert_string_equal(messages[2].c_str(), "three");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_a_megabyte_each_way),
      cmocka_unit_test(test_pipelined_replies_come_in_order),
      cmocka_unit_test(test_subscription_over_tls),
  };
  return cmocka_run_group_tests(tests, tls_setup, tls_teardown);
}

// What the fleet unit tests share: a redis-server of their own (Unix socket, ACL user "mfad"
// limited to mfad:* keys and channels), started once per cmocka group, and a client on a private
// sd-event loop.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fleet/redis_client.hpp"
#include "core/store.hpp"
#include "cmocka_cpp.hpp"

namespace mfa::test {

inline constexpr const char* kRedisPassword = "test-password-5b1e";

inline std::string make_temp_dir() {
  char tmpl[] = "/tmp/mfad-test-fleet-XXXXXX";
  char* d = mkdtemp(tmpl);
  assert_non_null(d);
  return d;
}

inline CodeHash code_hash(uint8_t seed) {
  CodeHash h{};
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = static_cast<uint8_t>(seed + i);
  return h;
}

struct RedisServer {
  std::string dir;
  std::string socket;
  pid_t pid = -1;
};

// The group's server, for tests that freeze it.
inline RedisServer* g_redis_server = nullptr;

inline bool start_redis_server(RedisServer* s) {
  s->dir = make_temp_dir();
  s->socket = s->dir + "/redis.sock";
  {
    std::ofstream conf(s->dir + "/redis.conf");
    conf << "port 0\nunixsocket " << s->socket << "\nunixsocketperm 700\ndaemonize no\n"
         << "dir " << s->dir << "\nsave \"\"\nappendonly no\n"
         << "requirepass admin-only-9f2c\n"
         << "user mfad on >" << kRedisPassword << " ~mfad:* &mfad:* +@all -@admin -@dangerous\n";
  }
  s->pid = fork();
  if (s->pid == 0) {
    const std::string conf = s->dir + "/redis.conf";
    const std::string log = s->dir + "/redis.log";
    FILE* out = freopen(log.c_str(), "w", stdout);
    (void)out;
    execl("/usr/bin/redis-server", "redis-server", conf.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 500; ++i) {
    struct stat st;
    if (stat(s->socket.c_str(), &st) == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

inline void stop_redis_server(RedisServer* s) {
  if (s->pid > 0) {
    kill(s->pid, SIGCONT);  // a test may have left it frozen
    kill(s->pid, SIGKILL);
    waitpid(s->pid, nullptr, 0);
  }
  std::filesystem::remove_all(s->dir);
}

inline int redis_group_setup(void** /*state*/) {
  g_redis_server = new RedisServer;
  if (!start_redis_server(g_redis_server)) {
    fprintf(stderr, "redis-server did not start\n");
    return -1;
  }
  return 0;
}

inline int redis_group_teardown(void** /*state*/) {
  stop_redis_server(g_redis_server);
  delete g_redis_server;
  g_redis_server = nullptr;
  return 0;
}

// A client of the group's server on a private loop; the client's state changes land in states.
struct RedisLoop {
  sd_event* event = nullptr;
  std::unique_ptr<RedisClient> client;
  std::vector<std::pair<bool, std::string>> states;

  explicit RedisLoop(const char* password = kRedisPassword,
                     uint64_t timeout_usec = RedisClientOptions{}.timeout_usec) {
    assert_true(sd_event_new(&event) >= 0);
    RedisClientOptions o;
    o.address.unix_path = g_redis_server->socket;
    o.user = "mfad";
    o.password = SecureString(password);
    o.timeout_usec = timeout_usec;
    auto c = RedisClient::create(event, std::move(o), [this](bool ready, const std::string& why) {
      states.emplace_back(ready, why);
    });
    assert_true(c.ok());
    client = std::move(c).value();
  }
  ~RedisLoop() {
    client.reset();
    sd_event_unref(event);
  }
  RedisLoop(const RedisLoop&) = delete;
  RedisLoop& operator=(const RedisLoop&) = delete;

  // Runs the loop until pred() or the deadline.
  bool run_until(const std::function<bool()>& pred, int ms = 3000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end)
        return false;
      if (sd_event_run(event, 10 * 1000) < 0)
        return false;
    }
    return true;
  }
  void wait_ready() {
    assert_true(run_until([&] { return client->ready(); }));
  }
  // The client dates a command's deadline from the loop's last wake-up: after another test loop
  // ran for a while, this one first wakes up once.
  void refresh_time() { (void)sd_event_run(event, 0); }
  Result<RedisReply> eval(const LuaScript& script, std::vector<std::string> keys,
                          std::vector<std::string> args) {
    refresh_time();
    std::optional<Result<RedisReply>> out;
    client->eval(script, std::move(keys), std::move(args),
                 [&](Result<RedisReply> r) { out.emplace(std::move(r)); });
    assert_true(run_until([&] { return out.has_value(); }));
    return std::move(*out);
  }
  Result<RedisReply> command(std::vector<std::string> args) {
    refresh_time();
    std::optional<Result<RedisReply>> out;
    client->command(std::move(args), [&](Result<RedisReply> r) { out.emplace(std::move(r)); });
    assert_true(run_until([&] { return out.has_value(); }));
    return std::move(*out);
  }
};

}  // namespace mfa::test

// org.mfad1.Manager's methods as a hostile caller may call them: method calls built from the
// input, with any member name, any signature and any values (wrong types, missing and extra
// arguments, megabyte strings, control characters, strings sd-bus refuses to marshal), sent over
// a peer-to-peer bus on a socketpair to the real vtable handlers (daemon/bus/manager_vtable.cpp)
// of a ManagerBus whose Authenticator runs on a SQLite store on tmpfs, a fixed clock and a user
// directory of its own. Every call must get exactly one reply, a method return of the method's
// result signature or an error with a well-formed name; a crash, a sanitizer report or a call
// left unanswered is a finding.
//
// What is not the product: the bus. mfad trusts the bus daemon to vouch for the caller's uid
// (bus/caller.hpp); here the input names the caller, by standing in for the three sd-bus calls
// that read the peer's credentials. polkit is a peer that answers every question with an error
// (ServiceUnknown, as when polkitd is not running).
//
// The input: one call per line, fields separated by TAB:
//   UID <TAB> MEMBER { <TAB> TYPE=VALUE }
// TYPE: s, o, u, i, t, b, as (VALUE "a,b,c"), a{ss} ("k:v,k:v"), a{sv} ("k:T:v,..." with T one of
// s, u, b, as, i) or v (T:v). A string VALUE "$" is the last string a reply returned (a challenge,
// a session id), "#" the TOTP code of the last enrolled secret, "*N" is N KiB of 'x', "%HEX" is raw
// bytes (control characters, invalid UTF-8).
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bus/manager.hpp"
#include "common/base32.hpp"
#include "common/crypto.hpp"
#include "common/otp.hpp"
#include "common/dbus_names.hpp"
#include "common/handles.hpp"
#include "common/seal.hpp"
#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/user_directory.hpp"
#include "storage/sqlite_store.hpp"

namespace {

uid_t g_caller_uid = 0;  // whom the bus vouches for, for the call being sent

}  // namespace

// The bus's word on the caller (see above): the process's own credentials object, whose euid is
// the input's and is not augmented from /proc.
extern "C" int sd_bus_query_sender_creds(sd_bus_message* /*m*/, uint64_t /*mask*/,
                                         sd_bus_creds** ret) {
  return sd_bus_creds_new_from_pid(ret, 0, SD_BUS_CREDS_PID);
}
extern "C" int sd_bus_creds_get_euid(sd_bus_creds* /*c*/, uid_t* euid) {
  *euid = g_caller_uid;
  return 0;
}
extern "C" uint64_t sd_bus_creds_get_augmented_mask(const sd_bus_creds* /*c*/) {
  return 0;
}

namespace {

using namespace mfa;

constexpr uid_t kAlice = 1000, kBob = 1001, kCarol = 1002;

class Users final : public UserDirectory {
 public:
  std::optional<uid_t> uid_of(std::string_view user) const override {
    if (user == "root")
      return 0;
    if (user == "alice")
      return kAlice;
    if (user == "bob")
      return kBob;
    if (user == "carol")
      return kCarol;
    return std::nullopt;
  }
  std::optional<std::string> name_of(uid_t uid) const override {
    switch (uid) {
      case 0:
        return "root";
      case kAlice:
        return "alice";
      case kBob:
        return "bob";
      case kCarol:
        return "carol";
      default:
        return std::nullopt;
    }
  }
  bool in_group(uid_t uid, std::string_view group) const override {
    return uid == kCarol && group == "mfa-admin";
  }
};

// Fixed time that moves on by 31 s per call: lockouts and expiries happen within one input.
class TestClock final : public Clock {
 public:
  int64_t realtime_usec() const override { return 1700000000000000 + now_; }
  uint64_t monotonic_usec() const override { return 1000000000 + static_cast<uint64_t>(now_); }
  void advance(int64_t usec) { now_ += usec; }

 private:
  int64_t now_ = 0;
};

// The result signature of each method (org.mfad1.Manager.xml).
const std::map<std::string, std::string, std::less<>> kResults = {
    {"BeginAuthentication", "sas"},
    {"SendSmsCode", "s"},
    {"Verify", "s"},
    {"EndAuthentication", ""},
    {"OpenSession", "s"},
    {"CloseSession", ""},
    {"GetUser", "a{sv}"},
    {"BeginTotpEnrollment", "ss"},
    {"ConfirmTotpEnrollment", ""},
    {"BeginSmsEnrollment", "s"},
    {"ConfirmSmsEnrollment", ""},
    {"GenerateBackupCodes", "as"},
    {"DisableMethod", ""},
    {"SendStepUpCode", "s"},
    {"ListSessions", "aa{sv}"},
    {"TerminateSession", ""},
    {"ListUsers", "aa{sv}"},
    {"ResetUser", ""},
    {"Unlock", ""},
    {"ListAuditEvents", "aa{sv}"},
    {"VerifyAuditTrail", "bts"},
};

void check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "fuzz_bus: %s\n", what);
    abort();
  }
}

struct World {
  Config config;
  TestClock clock;
  Users users;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<AuditLog> audit;
  std::optional<Sealer> sealer;
  SecureBytes code_hash_key;
  std::unique_ptr<Authenticator> authenticator;
  sd_event* event = nullptr;
  BusPtr server;
  BusPtr client;
  std::unique_ptr<ManagerBus> manager;
  std::string last_string = "0123456789abcdef0123456789abcdef";
  std::string totp_secret;  // the last BeginTotpEnrollment's secret (base32)
  std::string state_dir;

  World() {
    config.issuer = "fuzz";
    // SqliteStore::open wants a file it can check: one in a fresh directory on tmpfs.
    char dir[] = "/dev/shm/mfa-fuzz-bus-XXXXXX";
    check(mkdtemp(dir) != nullptr, "no directory for the store");
    state_dir = dir;
    auto opened = SqliteStore::open(std::string(dir) + "/mfad.db", clock);
    if (!opened.ok())
      fprintf(stderr, "fuzz_bus: %s\n", opened.error().message.c_str());
    check(opened.ok(), "cannot open the store");
    store = std::move(opened).value();
    audit = std::make_unique<AuditLog>(*store, clock);
    const uint8_t master[32] = {7};
    auto s = Sealer::create(std::span<const uint8_t>(master));
    check(s.ok(), "no sealer");
    sealer.emplace(std::move(s).value());
    auto k = hkdf_sha256(std::span<const uint8_t>(master), "mfad code hash v1", 32);
    check(k.ok(), "no code hash key");
    code_hash_key = std::move(k).value();
    authenticator = std::make_unique<Authenticator>(
        AuthenticatorDeps{config, *store, *audit, *sealer, code_hash_key, clock, users, nullptr});

    check(sd_event_new(&event) >= 0, "no event loop");
    int fds[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0,
          "no socketpair");
    sd_bus* raw = nullptr;
    check(sd_bus_new(&raw) >= 0, "no bus");
    server.reset(raw);
    check(sd_bus_new(&raw) >= 0, "no bus");
    client.reset(raw);
    sd_id128_t id;
    check(sd_id128_randomize(&id) >= 0, "no id");
    check(sd_bus_set_server(server.get(), 1, id) >= 0, "set_server");
    check(sd_bus_set_fd(server.get(), fds[0], fds[0]) >= 0, "set_fd");
    check(sd_bus_set_fd(client.get(), fds[1], fds[1]) >= 0, "set_fd");
    check(sd_bus_start(server.get()) >= 0, "server start");
    check(sd_bus_start(client.get()) >= 0, "client start");
    check(sd_bus_attach_event(server.get(), event, SD_EVENT_PRIORITY_NORMAL) >= 0, "attach");
    auto mb = ManagerBus::create(event, server.get(), *authenticator, *store, config);
    check(mb.ok(), "cannot create the manager");
    manager = std::move(mb).value();
    while (sd_bus_is_ready(client.get()) <= 0 || sd_bus_is_ready(server.get()) <= 0) {
      check(sd_bus_process(client.get(), nullptr) >= 0, "client process");
      check(sd_event_run(event, 1000) >= 0, "event run");
    }
  }
  ~World() {
    manager.reset();
    (void)sd_bus_detach_event(server.get());
    server.reset();
    client.reset();
    sd_event_unref(event);
    authenticator.reset();
    audit.reset();
    store.reset();
    std::filesystem::remove_all(state_dir);
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;
};

World* g_world = nullptr;

// A fresh world every kWorldRuns inputs: state carries over between inputs (what one enrolled,
// the next may use), but the store and its audit trail stay small enough to be fast.
constexpr int kWorldRuns = 256;

// The world of the next input.
World& world() {
  static int runs = 0;
  if (g_world != nullptr && ++runs % kWorldRuns == 0) {
    delete g_world;
    g_world = nullptr;
  }
  if (g_world == nullptr) {
    static const bool cleanup = atexit([] { delete g_world; }) == 0;
    (void)cleanup;
    g_world = new World();
  }
  return *g_world;
}

std::vector<std::string_view> split(std::string_view s, char sep, size_t max) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < max) {
    size_t p = s.find(sep);
    if (p == std::string_view::npos)
      break;
    out.push_back(s.substr(0, p));
    s.remove_prefix(p + 1);
  }
  out.push_back(s);
  return out;
}

// The items of a container's VALUE: none for "".
std::vector<std::string_view> items(std::string_view v) {
  return v.empty() ? std::vector<std::string_view>() : split(v, ',', 4096);
}

int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

std::string string_value(std::string_view v) {
  if (v == "$")
    return g_world->last_string;
  if (v == "#") {
    // The code of the last enrolled secret now: the way past ConfirmTotpEnrollment, and logins.
    auto key = base32_decode(g_world->totp_secret);
    if (!key.ok() || key->empty())
      return "000000";
    return std::string(totp(key->span(), g_world->clock.now_seconds(), TotpParams{}).view());
  }
  if (v.size() > 1 && v[0] == '*') {
    size_t kib = 0;
    for (char c : v.substr(1)) {
      if (c < '0' || c > '9')
        break;
      kib = std::min<size_t>(kib * 10 + static_cast<size_t>(c - '0'), 4096);
    }
    return std::string(kib * 1024, 'x');
  }
  if (!v.empty() && v[0] == '%') {
    std::string out;
    for (size_t i = 1; i + 1 < v.size(); i += 2) {
      int h = hex(v[i]), l = hex(v[i + 1]);
      if (h < 0 || l < 0)
        break;
      out.push_back(static_cast<char>(h * 16 + l));
    }
    return out;
  }
  return std::string(v);
}

uint64_t number(std::string_view v) {
  uint64_t n = 0;
  bool negative = !v.empty() && v[0] == '-';
  for (char c : v.substr(negative ? 1 : 0)) {
    if (c < '0' || c > '9')
      break;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return negative ? ~n + 1 : n;
}

// Appends one value of type t; a value sd-bus refuses to marshal is left out (the call goes with
// what was appended: sd-bus never sends what it would not read).
int append_value(sd_bus_message* m, std::string_view t, std::string_view v) {
  if (t == "s" || t == "o") {
    std::string s = string_value(v);
    return sd_bus_message_append_basic(m, t[0], s.c_str());
  }
  if (t == "u") {
    uint32_t u = static_cast<uint32_t>(number(v));
    return sd_bus_message_append_basic(m, 'u', &u);
  }
  if (t == "i") {
    int32_t i = static_cast<int32_t>(number(v));
    return sd_bus_message_append_basic(m, 'i', &i);
  }
  if (t == "t") {
    uint64_t n = number(v);
    return sd_bus_message_append_basic(m, 't', &n);
  }
  if (t == "b") {
    int b = v == "1" || v == "true";
    return sd_bus_message_append_basic(m, 'b', &b);
  }
  if (t == "as") {
    int r = sd_bus_message_open_container(m, 'a', "s");
    for (auto item : items(v)) {
      std::string s = string_value(item);
      if (r >= 0)
        r = sd_bus_message_append_basic(m, 's', s.c_str());
    }
    return r < 0 ? r : sd_bus_message_close_container(m);
  }
  if (t == "a{ss}") {
    int r = sd_bus_message_open_container(m, 'a', "{ss}");
    for (auto item : items(v)) {
      auto kv = split(item, ':', 2);
      std::string k = string_value(kv[0]);
      std::string val = kv.size() > 1 ? string_value(kv[1]) : std::string();
      if (r >= 0)
        r = sd_bus_message_append(m, "{ss}", k.c_str(), val.c_str());
    }
    return r < 0 ? r : sd_bus_message_close_container(m);
  }
  if (t == "a{sv}") {
    int r = sd_bus_message_open_container(m, 'a', "{sv}");
    for (auto item : items(v)) {
      auto parts = split(item, ':', 3);
      std::string k = string_value(parts[0]);
      std::string_view vt = parts.size() > 1 ? parts[1] : "s";
      std::string_view vv = parts.size() > 2 ? parts[2] : "";
      if (vt != "s" && vt != "u" && vt != "b" && vt != "as" && vt != "i")
        vt = "s";
      const std::string sig(vt);
      if (r >= 0)
        r = sd_bus_message_open_container(m, 'e', "sv");
      if (r >= 0)
        r = sd_bus_message_append_basic(m, 's', k.c_str());
      if (r >= 0)
        r = sd_bus_message_open_container(m, 'v', sig.c_str());
      if (r >= 0)
        r = append_value(m, vt, vv);
      if (r >= 0)
        r = sd_bus_message_close_container(m);
      if (r >= 0)
        r = sd_bus_message_close_container(m);
    }
    return r < 0 ? r : sd_bus_message_close_container(m);
  }
  if (t == "v") {
    auto parts = split(v, ':', 2);
    std::string_view vt = parts[0];
    if (vt != "s" && vt != "u" && vt != "b" && vt != "as" && vt != "i")
      vt = "s";
    const std::string sig(vt);
    int r = sd_bus_message_open_container(m, 'v', sig.c_str());
    if (r >= 0)
      r = append_value(m, vt, parts.size() > 1 ? parts[1] : "");
    return r < 0 ? r : sd_bus_message_close_container(m);
  }
  return -EINVAL;
}

bool well_formed_error_name(const char* name) {
  if (name == nullptr)
    return false;
  std::string_view n(name);
  return n.starts_with("org.mfad1.Error.") || n.starts_with("org.freedesktop.DBus.Error.");
}

// The client's side: answers polkit's questions with an error; returns the reply to cookie when
// it came.
BusMessagePtr take_reply(World& w, uint64_t cookie, bool* answered) {
  BusMessagePtr reply;
  for (;;) {
    sd_bus_message* m = nullptr;
    int r = sd_bus_process(w.client.get(), &m);
    check(r >= 0, "the client's end of the bus failed");
    if (r == 0)
      return reply;
    if (m == nullptr)
      continue;
    BusMessagePtr owned(m);
    if (sd_bus_message_is_method_call(m, nullptr, nullptr) > 0) {
      // polkit (or anything else mfad asks): not here.
      (void)sd_bus_reply_method_errorf(m, SD_BUS_ERROR_SERVICE_UNKNOWN, "no polkit here");
      continue;
    }
    uint64_t c = 0;
    if (sd_bus_message_get_reply_cookie(m, &c) >= 0 && c == cookie) {
      check(!*answered, "two replies to one call");
      *answered = true;
      reply = std::move(owned);
    }
  }
}

void check_reply(World& w, std::string_view member, sd_bus_message* reply) {
  const sd_bus_error* error = sd_bus_message_get_error(reply);
  if (error != nullptr) {
    check(well_formed_error_name(error->name), "an error reply with a foreign name");
    check(error->message != nullptr && error->message[0] != '\0', "an error without a message");
    return;
  }
  auto it = kResults.find(member);
  check(it != kResults.end(), "a method return to an unknown method");
  const char* sig = sd_bus_message_get_signature(reply, 1);
  check(sig != nullptr && it->second == sig, "a method return of the wrong signature");
  // Keep the first string for "$" (a challenge, a session id, a masked number, a secret).
  if (!it->second.empty() && it->second[0] == 's') {
    const char* s = nullptr;
    if (sd_bus_message_read_basic(reply, 's', &s) > 0 && s != nullptr)
      w.last_string = s;
    if (member == "BeginTotpEnrollment" && s != nullptr)
      w.totp_secret = s;
  }
}

void call(World& w, std::string_view line) {
  auto fields = split(line, '\t', 64);
  if (fields.size() < 2)
    return;
  g_caller_uid = static_cast<uid_t>(number(fields[0]));
  // As sd-bus reads it: a C string (the field may hold NUL bytes).
  const std::string member(std::string(fields[1]).c_str());
  if (member.empty() || member.size() > 255)
    return;
  w.clock.advance(31 * 1000000);  // each call in a TOTP step of its own: no replays
  sd_bus_message* raw = nullptr;
  if (sd_bus_message_new_method_call(w.client.get(), &raw, nullptr, dbus::kObjectPath,
                                     dbus::kInterface, member.c_str()) < 0)
    return;  // not a member name sd-bus would send
  BusMessagePtr m(raw);
  // One unique name per uid: mfad caches a peer's credentials by its unique name.
  const std::string sender = ":1." + std::to_string(g_caller_uid);
  check(sd_bus_message_set_sender(m.get(), sender.c_str()) >= 0, "set_sender");
  for (size_t i = 2; i < fields.size(); ++i) {
    auto tv = split(fields[i], '=', 2);
    if (append_value(m.get(), tv[0], tv.size() > 1 ? tv[1] : "") < 0)
      break;
  }
  uint64_t cookie = 0;
  if (sd_bus_send(w.client.get(), m.get(), &cookie) < 0)
    return;  // a message sd-bus refuses to send (too large, ...)

  bool answered = false;
  BusMessagePtr reply;
  for (int idle = 0; !answered;) {
    int r = sd_event_run(w.event, 0);
    check(r >= 0, "the event loop failed");
    BusMessagePtr got = take_reply(w, cookie, &answered);
    if (got)
      reply = std::move(got);
    if (answered)
      break;
    if (r == 0) {
      // Nothing ready: wait a little (the commit's timer, the socket).
      check(sd_event_run(w.event, 10 * 1000) >= 0, "the event loop failed");
      check(++idle < 500, "a call left unanswered for 5 s");
    }
  }
  // Whatever the call left behind (a commit, a reply to polkit) runs before the next one.
  while (sd_event_run(w.event, 0) > 0) {
  }
  check_reply(w, member, reply.get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  int calls = 0;
  for (auto line : split(text, '\n', 17)) {
    if (++calls > 16)
      break;
    call(w, line);
  }
  return 0;
}

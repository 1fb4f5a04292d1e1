// The one way a call resumes after an asynchronous answer (bus/pending_call.hpp), its replies
// (bus/reply.hpp) and the fleet's Begin reads, over a peer-to-peer bus on a socketpair whose
// client side sees the replies. What a caller sees: exactly one reply per call; a step that the
// shutdown overtook never runs; an exception is Internal, never silence.
#include <poll.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "bus/fleet_begin_reads.hpp"
#include "bus/pending_call.hpp"
#include "bus/reply.hpp"
#include "cmocka_cpp.hpp"
#include "common/dbus_names.hpp"
#include "common/handles.hpp"

using namespace mfa;

namespace {

// Moves both ends of the connection along until neither has anything left to do.
void pump(sd_bus* a, sd_bus* b) {
  for (;;) {
    int ra = sd_bus_process(a, nullptr);
    int rb = sd_bus_process(b, nullptr);
    assert_true(ra >= 0 && rb >= 0);
    if (ra > 0 || rb > 0)
      continue;
    if (sd_bus_is_ready(a) > 0 && sd_bus_is_ready(b) > 0)
      return;
    struct pollfd pfd[2] = {{sd_bus_get_fd(a), static_cast<short>(sd_bus_get_events(a)), 0},
                            {sd_bus_get_fd(b), static_cast<short>(sd_bus_get_events(b)), 0}};
    assert_true(poll(pfd, 2, 5000) > 0);
  }
}

struct Fixture {
  BusPtr server;  // mfad's end
  BusPtr client;  // the callers' end
  int steps_after = 0;
  CallRegistry registry{[this] { ++steps_after; }};

  Fixture() {
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    sd_bus* s = nullptr;
    sd_bus* c = nullptr;
    assert_int_equal(sd_bus_new(&s), 0);
    server.reset(s);
    assert_int_equal(sd_bus_new(&c), 0);
    client.reset(c);
    sd_id128_t id;
    assert_int_equal(sd_id128_randomize(&id), 0);
    assert_int_equal(sd_bus_set_server(s, 1, id), 0);
    assert_int_equal(sd_bus_set_fd(s, fds[0], fds[0]), 0);
    assert_int_equal(sd_bus_set_fd(c, fds[1], fds[1]), 0);
    assert_int_equal(sd_bus_start(s), 0);
    assert_true(sd_bus_start(c) >= 0);
    pump(s, c);
  }

  // A call as mfad receives it, from a caller that is neither root nor an admin.
  CallPtr call() {
    sd_bus_message* m = nullptr;
    assert_int_equal(sd_bus_message_new_method_call(client.get(), &m, nullptr, dbus::kObjectPath,
                                                    dbus::kInterface, "GetUser"),
                     0);
    BusMessagePtr sent(m);
    uint64_t cookie = 0;  // without one, sd-bus marks the call "no reply expected"
    assert_int_equal(sd_bus_send(client.get(), m, &cookie), 1);
    sd_bus_message* received = nullptr;
    while (received == nullptr)
      assert_true(sd_bus_process(server.get(), &received) >= 0);
    BusMessagePtr owned(received);
    Caller caller{1000, 42, ":1.7"};
    return std::make_shared<PendingCall>(registry, received, std::move(caller));
  }

  // What the caller received: "" for a method return, else the error name; "twice" for a second
  // reply to one call.
  std::map<uint64_t, std::string> replies() {
    assert_true(sd_bus_flush(server.get()) >= 0);
    std::map<uint64_t, std::string> seen;
    for (;;) {
      sd_bus_message* m = nullptr;
      int r = sd_bus_process(client.get(), &m);
      assert_true(r >= 0);
      if (r == 0)
        return seen;
      if (m == nullptr)
        continue;
      BusMessagePtr owned(m);
      uint64_t cookie = 0;
      assert_int_equal(sd_bus_message_get_reply_cookie(m, &cookie), 0);
      const sd_bus_error* error = sd_bus_message_get_error(m);
      std::string what = error ? error->name : "";
      seen[cookie] = seen.count(cookie) ? "twice" : what;
    }
  }
  std::string only_reply() {
    auto seen = replies();
    assert_int_equal(seen.size(), 1);
    return seen.begin()->second;
  }
};

// The answer resumes the call: its step runs once with it, then the after-step hook; the call
// waits on Redis until then.
void test_then_resumes_the_call_with_the_answer(void**) {
  Fixture f;
  std::function<void(bool)> answer;
  int got = -1;
  {
    CallPtr call = f.call();
    answer = call->then<bool>(CallWait::kRedis, [&got](const CallPtr& c, bool online) {
      got = online;
      Outcome o =
          method_return(c->message(), [](sd_bus_message* r) { return append_string(r, "totp"); });
      c->send(o.reply.get());
    });
  }
  // Only the callback holds the call now.
  assert_int_equal(f.registry.waiting(CallWait::kRedis), 1);
  assert_true(f.replies().empty());
  answer(true);
  assert_int_equal(got, 1);
  assert_int_equal(f.steps_after, 1);
  assert_int_equal(f.registry.waiting(CallWait::kRedis), 0);
  assert_string_equal(f.only_reply().c_str(), "");
  answer = nullptr;
  assert_int_equal(f.registry.size(), 0);
}

// The shutdown answers what waits too long; the answer that comes after finds the call answered
// and its step does not run.
void test_a_call_answered_at_shutdown_does_not_resume(void**) {
  Fixture f;
  CallPtr call = f.call();
  bool ran = false;
  auto answer = call->then<bool>(CallWait::kRedis, [&ran](const CallPtr&, bool) { ran = true; });
  f.registry.stop();
  f.registry.answer_waiting(CallWait::kPolkit, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  assert_false(call->answered());
  f.registry.answer_waiting(CallWait::kRedis, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  assert_true(call->answered());
  answer(false);
  assert_false(ran);
  assert_string_equal(f.only_reply().c_str(), SD_BUS_ERROR_NO_SERVER);
}

// A step that throws answers Internal; a second answer to one call is dropped.
void test_a_failing_step_is_internal_and_one_answer_only(void**) {
  Fixture f;
  CallPtr call = f.call();
  auto answer = call->then<int>(CallWait::kProvider, [](const CallPtr&, int) -> void {
    throw std::runtime_error("provider exploded");
  });
  answer(1);
  call->send_error(dbus::kErrorBadCode, "late");
  assert_string_equal(f.only_reply().c_str(), dbus::kErrorInternal);
  assert_int_equal(f.steps_after, 1);
}

// The call's admin authority is polkit's verdict: a refusal for want of the admin tier wants it
// while polkit was not asked; its answer decides from then on, and names polkit in the audit.
void test_polkit_is_the_calls_admin_authority(void**) {
  Fixture f;
  CallPtr call = f.call();
  const Caller& caller = call->caller();
  assert_non_null(caller.admin_authority.get());
  assert_false(call->admin_wanted());
  Error e = admin_refusal(caller, make_error(Errc::kNotAllowed, "no"));
  assert_int_equal(static_cast<int>(e.code), static_cast<int>(Errc::kNotAllowed));
  assert_true(call->admin_wanted());
  call->admin_answered(true);
  assert_false(call->admin_wanted());
  assert_int_equal(static_cast<int>(caller.admin_authority->answer()),
                   static_cast<int>(AdminAuthority::Answer::kYes));
  assert_string_equal(caller.describe().c_str(), "uid=1000 pid=42 :1.7 via polkit");
  (void)admin_refusal(caller, make_error(Errc::kNotAllowed, "no"));
  assert_false(call->admin_wanted());  // answered: nothing more to ask
  call->send_errno(-EPERM);
}

// Replies: an Errc goes out under its org.mfad1.Error name; only BadCode and RateLimited count.
void test_replies(void**) {
  Fixture f;
  CallPtr call = f.call();
  Outcome refused = error_reply(call->message(), make_error(Errc::kBadCode, "Invalid code"));
  assert_false(refused.success());
  assert_true(refused.counted_failure());
  assert_false(error_reply(call->message(), make_error(Errc::kNotAllowed, "no")).counted_failure());
  Outcome ok = reply_to(call->message(), Result<std::string>(std::string("sms")), append_string,
                        Secrecy::kSensitive);
  assert_true(ok.success());
  assert_non_null(ok.reply.get());
  call->send(refused.reply.get());
  assert_string_equal(f.only_reply().c_str(), dbus::kErrorBadCode);
}

// Fleet mode: a Begin's read of Redis serves its challenge's first Verify only, from the same
// caller (its process, on any connection), within the reuse time.
void test_fleet_begin_reads(void**) {
  FleetBeginReads reads(60 * 1000000ULL);
  const Caller a{0, 500, ":1.5"};
  const Caller a_again{0, 500, ":1.9"};  // the same process on a new connection
  const Caller other{0, 501, ":1.6"};
  reads.note(a, "c1", 1000000);
  assert_false(reads.take(other, "c1", 2000000));  // another caller's challenge
  assert_true(reads.take(a_again, "c1", 2000000));
  assert_false(reads.take(a, "c1", 2000000));  // once
  reads.note(a, "c2", 1000000);
  assert_false(reads.take(a, "c2", 62000000));  // too old
  for (uint64_t i = 0; i < 100; ++i)
    reads.note(a, "old" + std::to_string(i), 1000000 + i);
  reads.note(a, "new", 200000000);
  assert_int_equal(reads.size(), 1);  // what is too old to serve is forgotten
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_then_resumes_the_call_with_the_answer),
      cmocka_unit_test(test_a_call_answered_at_shutdown_does_not_resume),
      cmocka_unit_test(test_a_failing_step_is_internal_and_one_answer_only),
      cmocka_unit_test(test_polkit_is_the_calls_admin_authority),
      cmocka_unit_test(test_replies),
      cmocka_unit_test(test_fleet_begin_reads),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// What deciding a call came to, and the building of its reply, written once for every method of
// org.mfad1.Manager. ManagerBus::answer() sends it (after the commit when the decision wrote).
#pragma once

#include <systemd/sd-bus.h>

#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/sms_codes.hpp"
#include "core/store.hpp"

namespace mfa {

// A call or reply kept by the closures of a deferred answer (std::function copies them).
using SharedMessage = std::shared_ptr<sd_bus_message>;
// Takes over m's reference.
SharedMessage share_message(BusMessagePtr m);

// What a reply tells that the disk must hold before it leaves (ManagerBus::answer_durable).
enum class Durability {
  kNone,     // a refusal that counts nothing: sent whatever the commit did
  kChange,   // a success: the change it reports
  kAttempt,  // BadCode, RateLimited: the failure it reports, counted against the user's limits
};

struct Outcome {
  BusMessagePtr reply;             // a method return, or the error of refused
  std::optional<Errc> refused;     // the Authenticator said no
  std::optional<SmsMessage> text;  // a text to send: the call is answered once it went out
  std::optional<Method> verified;  // Verify: the factor its success rests on (fleet confirm)
  bool unsynced = false;           // reports no decision a crash could undo (see answer())
  // With unsynced: a refusal a flood repeats (a locked account's login), sent late
  // (bus/held_replies.hpp).
  bool late = false;
  int failed = 0;  // a negative errno: no reply could be built

  bool success() const { return failed == 0 && !refused; }
  // BadCode and RateLimited: an attempt that counts against the user's limits.
  bool counted_failure() const {
    return refused == Errc::kBadCode || refused == Errc::kRateLimited;
  }
  Durability durability() const {
    if (success())
      return Durability::kChange;
    return counted_failure() ? Durability::kAttempt : Durability::kNone;
  }
  static Outcome of_text(SmsMessage text);
};

// Appends a method's return values; a negative errno when it cannot.
using Append = std::function<int(sd_bus_message* reply)>;
// Replies that carry a seed or codes are sensitive: sd-bus erases them when freed.
enum class Secrecy { kPlain, kSensitive };

Outcome method_return(sd_bus_message* call, const Append& append = nullptr,
                      Secrecy secrecy = Secrecy::kPlain);
// The error reply for an Errc: its org.mfad1.Error name and message.
Outcome error_reply(sd_bus_message* call, const Error& error);
Outcome reply_to(sd_bus_message* call, const Status& status);
// A decision's Result: its error, or the method return that append(reply, value) builds.
template <typename T, typename AppendValue>
Outcome reply_to(sd_bus_message* call, const Result<T>& result, AppendValue append,
                 Secrecy secrecy = Secrecy::kPlain) {
  if (!result.ok())
    return error_reply(call, result.error());
  return method_return(
      call, [&](sd_bus_message* reply) { return append(reply, *result); }, secrecy);
}

int append_string(sd_bus_message* m, const std::string& s);
// An array of contents, one element per item, each appended by append_one(m, item).
template <typename Items, typename AppendOne>
int append_array(sd_bus_message* m, const char* contents, const Items& items,
                 AppendOne append_one) {
  int r = sd_bus_message_open_container(m, 'a', contents);
  for (auto it = std::begin(items); r >= 0 && it != std::end(items); ++it)
    r = append_one(m, *it);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}
int append_strings(sd_bus_message* m, const std::vector<std::string>& strings);

}  // namespace mfa

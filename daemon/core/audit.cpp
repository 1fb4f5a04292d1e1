#include "core/audit.hpp"

#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include <string>
#include <vector>

namespace mfa {
namespace {

struct AuditKind {
  const char* kind;
  const char* message_id;
};

// One fixed MESSAGE_ID per kind (docs/audit-events.md), generated once; never change one.
constexpr AuditKind kAuditKinds[] = {
    {"auth.begin", "c4e8b2b321104c748c6f5067738cc0d1"},
    {"auth.success", "d9326f504d654be38956ff8defa70708"},
    {"auth.failure", "a5b30892e9ee4c75a965baac52cc0cc3"},
    {"auth.lockout", "0113aa1da47245e4a54af3785cd7b43f"},
    {"auth.not-enrolled", "ac8f3f1b4411414895bda06d7d041c2c"},
    {"auth.rate-limited", "c0ece841a6e148be8cdb8f6b037c40c4"},
    {"auth.end", "e840eae1aa0a4f8facc2849768b26001"},
    {"access.denied", "859f4144603446489993f8d3da51acd8"},
    {"enroll.begin", "f96e8db1289043d89264c87d6e28500e"},
    {"enroll.confirm", "5823b63bd70d4da2b55c5bf86c1a713b"},
    {"enroll.disable", "47321ce613ff4e1b9113d737851ee33c"},
    {"backup.generate", "bbd1b8ffa77741ab94b1c2fbfd857c91"},
    {"backup.used", "4149042910ed4d03a30f1d355becc55b"},
    {"admin.reset", "6b49551564d049c9a40ae7e5e19119a2"},
    {"admin.unlock", "86ec7431afaa4a47b1230e303ac074aa"},
    {"session.open", "b4b053baa9f840eaa09280af35ae1033"},
    {"session.close", "cdbb577a73b044dfa4a969749fb88a0e"},
    {"session.terminate", "5c8fd0a122714fe08a47938c76dca48f"},
    {"sms.sent", "096b4d98facd4acda8e0394693bab58d"},
    {"sms.failed", "67fc7972e48148e49c29353eee602ae1"},
    {"degraded", "4a3489b19b4142bd8e91f135626678c9"},
    {"storage.error", "e90073f35d434ea5b70ee2df0c5e309b"},
    {"security.new-device", "33a9964cb9b44f1c981d28e55646102c"},
    {"security.failure-burst", "23b74709f3314a6a9218a79c3d5e677f"},
    {"config.warning", "ed2d3780676a42b79c7fcdaf9d787493"},
    {"daemon.start", "b6e207d17bdc413c9a7393fbe3f39759"},
    {"daemon.stop", "f131b182b97e456d81bf2c45e72fa32d"},
};
// Any kind not in the table.
constexpr const char* kFallbackMessageId = "9181a322c17346be8bc7ceaf2511834c";

// Journal fields and the stderr line stay bounded whatever a caller put in a detail.
constexpr size_t kMaxFieldValue = 1024;
constexpr size_t kMaxDetails = 32;

// One line, printable: control characters (a newline in an rhost, say) become '?', and long
// values are cut.
std::string sanitize(std::string_view value) {
  std::string out;
  size_t n = std::min(value.size(), kMaxFieldValue);
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
  }
  if (value.size() > n)
    out += "...";
  return out;
}

// "rhost" -> "MFA_RHOST": journald field names are upper-case letters, digits and '_'.
std::string detail_field_name(std::string_view key) {
  std::string name = "MFA_";
  for (char c : key.substr(0, 48)) {
    if (c >= 'a' && c <= 'z') {
      name.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      name.push_back(c);
    } else {
      name.push_back('_');
    }
  }
  return name;
}

int priority_of(const AuditEvent& event, bool store_failed) {
  if (store_failed)
    return LOG_ALERT;
  if (event.kind == "storage.error")
    return LOG_ALERT;
  if (event.kind == "auth.lockout" || event.kind.starts_with("security.") ||
      event.kind == "degraded") {
    return LOG_WARNING;
  }
  if (event.outcome == "error")
    return LOG_ERR;
  if (event.outcome == "failure" || event.outcome == "denied")
    return LOG_NOTICE;
  return LOG_INFO;
}

bool journal_available() {
  // Whether systemd runs the machine does not change while mfad runs; the socket may come and go.
  static const bool booted = sd_booted() > 0;
  return booted && access("/run/systemd/journal/socket", F_OK) == 0;
}

std::string summary(const AuditEvent& event) {
  std::string line = "audit kind=" + sanitize(event.kind);
  line += " user=" + sanitize(event.user);
  line += " outcome=" + sanitize(event.outcome);
  if (!event.reason.empty())
    line += " reason=" + sanitize(event.reason);
  if (!event.caller.empty())
    line += " caller=" + sanitize(event.caller);
  size_t n = 0;
  for (const auto& [key, value] : event.details) {
    if (n++ == kMaxDetails)
      break;
    line += " " + sanitize(key) + "=" + sanitize(value);
  }
  return line;
}

void log_event(const AuditEvent& event, const Error* store_error) {
  std::string message = summary(event);
  if (store_error)
    message += " (NOT STORED: " + sanitize(store_error->message) + ")";

  if (!journal_available()) {
    std::string line = "mfad: " + message + "\n";
    // One write, so that concurrent writers never interleave within a line.
    (void)!write(STDERR_FILENO, line.data(), line.size());
    return;
  }

  std::vector<std::string> fields;
  fields.push_back("MESSAGE=" + message);
  fields.push_back(std::string("MESSAGE_ID=") + AuditLog::message_id(event.kind));
  fields.push_back("PRIORITY=" + std::to_string(priority_of(event, store_error != nullptr)));
  fields.push_back("SYSLOG_IDENTIFIER=mfad");
  fields.push_back("MFA_KIND=" + sanitize(event.kind));
  fields.push_back("MFA_USER=" + sanitize(event.user));
  fields.push_back("MFA_OUTCOME=" + sanitize(event.outcome));
  fields.push_back("MFA_REASON=" + sanitize(event.reason));
  fields.push_back("MFA_CALLER=" + sanitize(event.caller));
  if (store_error)
    fields.push_back("MFA_STORE_ERROR=" + sanitize(store_error->message));
  size_t n = 0;
  for (const auto& [key, value] : event.details) {
    if (n++ == kMaxDetails)
      break;
    fields.push_back(detail_field_name(key) + "=" + sanitize(value));
  }
  std::vector<struct iovec> iov;
  iov.reserve(fields.size());
  for (auto& f : fields)
    iov.push_back({f.data(), f.size()});
  (void)sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace

const char* AuditLog::message_id(std::string_view kind) {
  for (const auto& k : kAuditKinds) {
    if (kind == k.kind)
      return k.message_id;
  }
  return kFallbackMessageId;
}

Status AuditLog::record(const AuditEvent& event) {
  AuditRecord row;
  row.time_usec = clock_.realtime_usec();
  row.kind = event.kind;
  row.user = event.user;
  row.outcome = event.outcome;
  row.reason = event.reason;
  row.caller = event.caller;
  nlohmann::json details = nlohmann::json::object();
  size_t n = 0;
  for (const auto& [key, value] : event.details) {
    if (n++ == kMaxDetails)
      break;
    details[key] = value;
  }
  // error_handler::replace: invalid UTF-8 in a detail (an rhost, a tty) must not throw.
  row.details_json = details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);

  Status stored = store_.append_audit(row);
  log_event(event, stored.ok() ? nullptr : &stored.error());
  if (observer_)
    observer_(event);
  return stored;
}

}  // namespace mfa

#include "bus/sessions.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

#include "common/dbus_names.hpp"
#include "core/log.hpp"

namespace mfa {
namespace {

constexpr char kLogindName[] = "org.freedesktop.login1";
constexpr char kLogindPath[] = "/org/freedesktop/login1";
constexpr char kLogindManager[] = "org.freedesktop.login1.Manager";

int pidfd_open(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

int append_entry(sd_bus_message* m, const char* key, const char* type, const void* value) {
  int r = sd_bus_message_open_container(m, 'e', "sv");
  if (r >= 0)
    r = sd_bus_message_append(m, "s", key);
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'v', type);
  if (r >= 0)
    r = sd_bus_message_append_basic(m, type[0], value);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

void emit(sd_bus* bus, const char* member, const char* types, const SessionRecord& s,
          const char* reason) {
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_signal(bus, &raw, dbus::kObjectPath, dbus::kInterface, member);
  BusMessagePtr m(raw);
  if (r >= 0) {
    r = reason ? sd_bus_message_append(m.get(), types, s.id.c_str(), s.user.c_str(), reason)
               : sd_bus_message_append(m.get(), types, s.id.c_str(), s.user.c_str());
  }
  if (r >= 0)
    r = sd_bus_send(bus, m.get(), nullptr);
  if (r < 0)
    MFA_LOG_WARNING("cannot emit %s: %s", member, strerror(-r));
}

}  // namespace

int append_session_record(sd_bus_message* m, const SessionRecord& s, std::string_view host) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  const std::pair<const char*, const std::string*> strings[] = {
      {"id", &s.id},
      {"user", &s.user},
      {"service", &s.service},
      {"rhost", &s.rhost},
      {"tty", &s.tty},
      {"ruser", &s.ruser},
      {"logind_session", &s.logind_session},
      {"factor", &s.factor},
      {"device", &s.device}};
  for (const auto& [key, value] : strings) {
    if (r < 0)
      break;
    r = append_entry(m, key, "s", value->c_str());
  }
  const uint32_t pid = s.leader_pid;
  const uint64_t started = static_cast<uint64_t>(s.started_usec);
  const uint64_t last_seen = static_cast<uint64_t>(s.last_seen_usec);
  if (r >= 0)
    r = append_entry(m, "leader_pid", "u", &pid);
  if (r >= 0)
    r = append_entry(m, "started", "t", &started);
  if (r >= 0)
    r = append_entry(m, "last_seen", "t", &last_seen);
  if (r >= 0 && !host.empty()) {
    const std::string owner(host);
    r = append_entry(m, "host", "s", owner.c_str());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

uint64_t proc_stat_start_time(std::string_view stat) {
  // comm (field 2) may hold spaces and parentheses: the fields after it start at the last ')',
  // each behind one space: " STATE PPID ...".
  size_t pos = stat.rfind(')');
  if (pos == std::string_view::npos)
    return 0;
  pos += 1;
  for (int field = 3; pos < stat.size() && stat[pos] == ' '; ++field) {
    const size_t begin = pos + 1;
    size_t end = stat.find_first_of(" \n", begin);
    if (end == std::string_view::npos)
      end = stat.size();
    if (field == 22) {
      uint64_t start = 0;
      auto [last, ec] = std::from_chars(stat.data() + begin, stat.data() + end, start);
      return ec == std::errc() && last == stat.data() + end ? start : 0;
    }
    pos = end;
  }
  return 0;
}

// One session being ended: the logind call in flight, then (or instead) the signals.
struct SessionBus::Termination {
  SessionBus* owner = nullptr;
  std::string id;
  std::string logind_session;
  pid_t leader = 0;
  uint64_t leader_start = 0;
  pid_t group = 0;
  Fd pidfd;
  BusSlotPtr call_slot;
  EventSourcePtr kill_timer;
};

Result<std::unique_ptr<SessionBus>> SessionBus::create(sd_event* event, sd_bus* bus,
                                                       GroupCommit& commit) {
  std::unique_ptr<SessionBus> sb(new SessionBus(event, bus, commit));
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time(event, &timer, CLOCK_REALTIME, UINT64_MAX, 100 * 1000,
                            &SessionBus::on_expiry, sb.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the session expiry timer: ") + strerror(-r));
  }
  sb->expiry_timer_.reset(timer);
  (void)sd_event_source_set_enabled(timer, SD_EVENT_OFF);
  (void)sd_event_source_set_description(timer, "session-expiry");
  return sb;
}

SessionBus::SessionBus(sd_event* event, sd_bus* bus, GroupCommit& commit)
    : event_(event), bus_(bus), commit_(commit) {}

SessionBus::~SessionBus() = default;

void SessionBus::attach(SessionRegistry* registry, int64_t max_lifetime_usec, int64_t idle_usec) {
  registry_ = registry;
  max_lifetime_usec_ = max_lifetime_usec;
  idle_usec_ = idle_usec;
  run_expiry();
}

void SessionBus::arm(int64_t at_realtime_usec) {
  if (at_realtime_usec <= 0)
    return;
  sd_event_source* timer = expiry_timer_.get();
  int enabled = SD_EVENT_OFF;
  uint64_t current = 0;
  if (sd_event_source_get_enabled(timer, &enabled) >= 0 && enabled != SD_EVENT_OFF &&
      sd_event_source_get_time(timer, &current) >= 0 &&
      current <= static_cast<uint64_t>(at_realtime_usec)) {
    return;  // already due earlier
  }
  int r = sd_event_source_set_time(timer, static_cast<uint64_t>(at_realtime_usec));
  if (r >= 0)
    r = sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_WARNING("cannot arm the session expiry timer: %s", strerror(-r));
}

void SessionBus::run_expiry() {
  if (!registry_)
    return;
  (void)sd_event_source_set_enabled(expiry_timer_.get(), SD_EVENT_OFF);
  auto next = registry_->expire();
  if (!next.ok()) {
    MFA_LOG_ERROR("session expiry failed: %s", next.error().message.c_str());
    // Try again shortly rather than never.
    arm(static_cast<int64_t>(time(nullptr) + 10) * 1000000);
  } else {
    arm(*next);
  }
  commit_.schedule();
}

int SessionBus::on_expiry(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  try {
    static_cast<SessionBus*>(userdata)->run_expiry();
  } catch (...) {
    MFA_LOG_ERROR("session expiry failed");
  }
  return 0;
}

void SessionBus::session_opened(const SessionRecord& session) {
  emit(bus_, "SessionOpened", "ss", session, nullptr);
  if (max_lifetime_usec_ > 0)
    arm(session.started_usec + max_lifetime_usec_);
  if (idle_usec_ > 0)
    arm(session.last_seen_usec + idle_usec_);
}

void SessionBus::session_closed(const SessionRecord& session, SessionEnd reason) {
  emit(bus_, "SessionClosed", "sss", session, session_end_name(reason));
}

std::optional<uint64_t> SessionBus::process_start(pid_t pid) {
  if (pid <= 0)
    return std::nullopt;
  if (kill(pid, 0) < 0 && errno == ESRCH)
    return std::nullopt;
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid())
    return errno == ENOENT ? std::nullopt : std::optional<uint64_t>(0);
  char buf[1024];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0)
    return 0;
  return proc_stat_start_time(std::string_view(buf, static_cast<size_t>(n)));
}

std::optional<int64_t> SessionBus::tty_last_use(std::string_view tty) {
  if (tty.starts_with("/dev/"))
    tty.remove_prefix(5);
  if (tty.empty() || tty.size() > 64 || tty.find("..") != std::string_view::npos ||
      !(tty.starts_with("pts/") || tty.starts_with("tty") || tty == "console"))
    return std::nullopt;
  std::string path = "/dev/" + std::string(tty);
  struct stat st {};
  if (stat(path.c_str(), &st) < 0 || !S_ISCHR(st.st_mode))
    return std::nullopt;
  return static_cast<int64_t>(st.st_atim.tv_sec) * 1000000 + st.st_atim.tv_nsec / 1000;
}

void SessionBus::end_processes(const SessionRecord& session) {
  auto t = std::make_unique<Termination>();
  t->owner = this;
  t->id = session.id;
  t->logind_session = session.logind_session;
  t->leader = static_cast<pid_t>(session.leader_pid);
  t->leader_start = session.leader_start;
  Termination& ref = *t;
  terminations_.push_back(std::move(t));

  if (!ref.logind_session.empty()) {
    // Async: a slow or absent logind never holds the loop. Its error (not on the bus, no such
    // session) falls back to signals.
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_call_method_async(bus_, &slot, kLogindName, kLogindPath, kLogindManager,
                                     "TerminateSession", &SessionBus::on_logind_reply, &ref, "s",
                                     ref.logind_session.c_str());
    if (r >= 0) {
      ref.call_slot.reset(slot);
      return;
    }
    MFA_LOG_WARNING("cannot ask logind to end session %s: %s", ref.logind_session.c_str(),
                    strerror(-r));
  }
  send_hangup(ref);
}

int SessionBus::on_logind_reply(sd_bus_message* m, void* userdata, sd_bus_error* /*ret_error*/) {
  auto* t = static_cast<Termination*>(userdata);
  try {
    const sd_bus_error* error = sd_bus_message_get_error(m);
    if (error == nullptr) {
      MFA_LOG_INFO("logind terminated session %s", t->logind_session.c_str());
      t->owner->finish(t);
      return 0;
    }
    MFA_LOG_INFO("logind did not terminate session %s (%s): signalling its leader",
                 t->logind_session.c_str(), error->name);
    t->call_slot.reset();
    t->owner->send_hangup(*t);
  } catch (...) {
    MFA_LOG_ERROR("ending a session failed");
  }
  return 0;
}

// SIGHUP to the leader's process group (and the leader), SIGKILL 5 s later if the leader is
// still there. The pidfd pins the leader: a pid reused meanwhile is never signalled.
void SessionBus::send_hangup(Termination& t) {
  if (t.leader <= 1) {
    finish(&t);
    return;
  }
  int fd = pidfd_open(t.leader);
  if (fd < 0 && errno != ENOSYS) {
    finish(&t);  // ESRCH: already gone
    return;
  }
  t.pidfd = Fd(fd);
  // Between the session's registration and now the pid may have been reused.
  auto start = process_start(t.leader);
  if (!start || (t.leader_start != 0 && *start != 0 && *start != t.leader_start)) {
    finish(&t);
    return;
  }
  pid_t group = getpgid(t.leader);
  // Never our own group (mfad started from a shell or a test harness) nor init's.
  if (group > 1 && group != getpgrp())
    t.group = group;
  if (t.group > 0)
    (void)kill(-t.group, SIGHUP);
  if (t.pidfd.valid())
    (void)pidfd_send_signal(t.pidfd.get(), SIGHUP);
  else
    (void)kill(t.leader, SIGHUP);
  MFA_LOG_INFO("sent SIGHUP to session leader %d (group %d)", static_cast<int>(t.leader),
               static_cast<int>(t.group));

  sd_event_source* timer = nullptr;
  uint64_t now = 0;
  int r = sd_event_now(event_, CLOCK_MONOTONIC, &now);
  if (r >= 0) {
    r = sd_event_add_time(event_, &timer, CLOCK_MONOTONIC, now + kKillGraceUsec, 100 * 1000,
                          &SessionBus::on_kill_timer, &t);
  }
  if (r < 0) {
    MFA_LOG_WARNING("cannot schedule SIGKILL: %s", strerror(-r));
    finish(&t);
    return;
  }
  t.kill_timer.reset(timer);
}

int SessionBus::on_kill_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* t = static_cast<Termination*>(userdata);
  try {
    bool alive = t->pidfd.valid() ? pidfd_send_signal(t->pidfd.get(), 0) == 0
                                  : t->owner->process_start(t->leader).has_value();
    if (alive) {
      if (t->group > 0)
        (void)kill(-t->group, SIGKILL);
      if (t->pidfd.valid())
        (void)pidfd_send_signal(t->pidfd.get(), SIGKILL);
      else
        (void)kill(t->leader, SIGKILL);
      MFA_LOG_WARNING("session leader %d ignored SIGHUP: sent SIGKILL",
                      static_cast<int>(t->leader));
    }
    t->owner->finish(t);
  } catch (...) {
    MFA_LOG_ERROR("ending a session failed");
  }
  return 0;
}

void SessionBus::finish(Termination* t) {
  for (auto it = terminations_.begin(); it != terminations_.end(); ++it) {
    if (it->get() == t) {
      terminations_.erase(it);
      return;
    }
  }
}

}  // namespace mfa

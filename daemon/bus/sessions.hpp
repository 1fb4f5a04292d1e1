// What ending a session does to the world (SessionEffects for mfad): the SessionOpened and
// SessionClosed signals, logind's TerminateSession (async, on mfad's own bus connection), SIGHUP
// then SIGKILL after 5 s to the leader's process group through a pidfd, and the sd-event timer
// that expires sessions.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string_view>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "storage/group_commit.hpp"
#include "core/sessions.hpp"

namespace mfa {

// One ListSessions row (a{sv}): id, user, service, rhost, tty, ruser, logind_session (s),
// leader_pid (u), factor, device (s), started, last_seen (t, unix usec); in fleet mode also host
// (s, the host that owns the session) when host is not empty.
int append_session_record(sd_bus_message* m, const SessionRecord& s, std::string_view host = {});

// The start time of a process (field 22, starttime, in clock ticks since boot) read from the text
// of its /proc/PID/stat; 0 when the text does not hold one.
uint64_t proc_stat_start_time(std::string_view stat);

class SessionBus final : public SessionEffects {
 public:
  static Result<std::unique_ptr<SessionBus>> create(sd_event* event, sd_bus* bus,
                                                    GroupCommit& commit);
  ~SessionBus() override;
  SessionBus(const SessionBus&) = delete;
  SessionBus& operator=(const SessionBus&) = delete;

  // The registry the expiry timer drives; runs a first expiry (reaping sessions whose leader
  // went away while mfad was down).
  void attach(SessionRegistry* registry, int64_t max_lifetime_usec, int64_t idle_usec);

  void session_opened(const SessionRecord& session) override;
  void session_closed(const SessionRecord& session, SessionEnd reason) override;
  void end_processes(const SessionRecord& session) override;
  std::optional<uint64_t> process_start(pid_t pid) override;
  std::optional<int64_t> tty_last_use(std::string_view tty) override;

  // Seconds between SIGHUP and SIGKILL.
  static constexpr uint64_t kKillGraceUsec = 5ULL * 1000000;

 private:
  struct Termination;

  SessionBus(sd_event* event, sd_bus* bus, GroupCommit& commit);
  void run_expiry();
  void arm(int64_t at_realtime_usec);
  void send_hangup(Termination& t);
  void finish(Termination* t);
  static int on_expiry(sd_event_source* s, uint64_t usec, void* userdata);
  static int on_logind_reply(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
  static int on_kill_timer(sd_event_source* s, uint64_t usec, void* userdata);

  sd_event* event_;
  sd_bus* bus_;
  GroupCommit& commit_;
  SessionRegistry* registry_ = nullptr;
  int64_t max_lifetime_usec_ = 0;
  int64_t idle_usec_ = 0;
  EventSourcePtr expiry_timer_;
  std::list<std::unique_ptr<Termination>> terminations_;
};

}  // namespace mfa

#include "fleet/shared_sessions.hpp"

#include <algorithm>

#include "core/log.hpp"

namespace mfa {

namespace {

Error degraded_now() {
  return make_error(Errc::kIo, "Redis unavailable (degraded mode)");
}

Error refused_by_redis(const char* what, const RedisReply& reply) {
  MFA_LOG_ERROR("fleet: Redis refused %s: %s", what, reply.str.c_str());
  return make_error(Errc::kIo, std::string("Redis refused ") + what);
}

}  // namespace

SharedSessions::SharedSessions(FleetCoordinator& fleet, const Config& config, const Clock& clock)
    : fleet_(fleet), config_(config), clock_(clock) {}

SharedSessions::~SharedSessions() {
  *alive_ = false;
}

Error SharedSessions::failure(const Error& error) {
  fleet_.report_unavailable(error.message);
  return error;
}

template <typename T, typename Parse>
RedisClient::Callback SharedSessions::reply_to(const char* what,
                                               std::function<void(Result<T>)> done, Parse parse) {
  return [this, alive = alive_, what, done = std::move(done),
          parse = std::move(parse)](Result<RedisReply> reply) {
    if (!*alive)
      return;
    if (!reply.ok())
      return done(failure(reply.error()));
    if (reply->is_error())
      return done(refused_by_redis(what, *reply));
    done(parse(*reply));
  };
}

void SharedSessions::register_session(const fleet::RemoteSession& session, int max,
                                      fleet::SessionAdmission mode,
                                      std::function<void(Result<fleet::RegisterOutcome>)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  fleet_.client().eval(
      fleet::session_register_script(),
      fleet::session_keys(config_.redis_key_prefix, session.record.user, session.host),
      fleet::session_register_args(session, clock_.realtime_usec(), max, mode),
      reply_to("a session registration", std::move(done),
               [](const RedisReply& r) { return fleet::parse_register_reply(r); }));
}

void SharedSessions::unregister_session(const std::string& user, const std::string& session_id,
                                        const std::string& host, std::function<void(Status)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  fleet_.client().eval(
      fleet::session_unregister_script(), fleet::session_keys(config_.redis_key_prefix, user, host),
      {session_id},
      reply_to("a session removal", std::move(done), [](const RedisReply&) { return Status{}; }));
}

void SharedSessions::list_sessions(
    const std::string& user, std::function<void(Result<std::vector<fleet::RemoteSession>>)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  const std::string& prefix = config_.redis_key_prefix;
  auto decode = reply_to(
      "a session listing", std::move(done),
      [all = user.empty()](const RedisReply& r) -> Result<std::vector<fleet::RemoteSession>> {
        if (r.type != RedisReply::Type::kArray)
          return make_error(Errc::kIo, "unexpected Redis reply to a session listing");
        std::vector<fleet::RemoteSession> out;
        // HGETALL: field, value, ...; the script: values only.
        const size_t step = all ? 2 : 1;
        for (size_t i = step - 1; i < r.elements.size(); i += step) {
          if (auto s = fleet::decode_session(r.elements[i].str))
            out.push_back(std::move(*s));
        }
        return out;
      });
  if (user.empty()) {
    fleet_.client().command({"HGETALL", fleet::session_records_key(prefix)}, std::move(decode));
    return;
  }
  fleet_.client().eval(
      fleet::session_list_script(),
      {fleet::user_keys(prefix, user).sessions, fleet::session_records_key(prefix)}, {},
      std::move(decode));
}

void SharedSessions::find_session(
    const std::string& session_id,
    std::function<void(Result<std::optional<fleet::RemoteSession>>)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  fleet_.client().command(
      {"HGET", fleet::session_records_key(config_.redis_key_prefix), session_id},
      reply_to("a session lookup", std::move(done),
               [session_id](const RedisReply& r) -> Result<std::optional<fleet::RemoteSession>> {
                 std::optional<fleet::RemoteSession> found;
                 if (!r.is_nil())
                   found = fleet::decode_session(r.str);
                 if (found && found->record.id != session_id)
                   found.reset();  // filed under another id: not this session
                 return found;
               }));
}

void SharedSessions::host_sessions(
    const std::string& host,
    std::function<void(Result<std::vector<std::pair<std::string, std::string>>>)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  fleet_.client().command(
      {"HGETALL", fleet::host_sessions_key(config_.redis_key_prefix, host)},
      reply_to("a host's session list", std::move(done),
               [](const RedisReply& r) -> Result<std::vector<std::pair<std::string, std::string>>> {
                 std::vector<std::pair<std::string, std::string>> out;
                 for (size_t i = 0; i + 1 < r.elements.size(); i += 2)
                   out.emplace_back(r.elements[i].str, r.elements[i + 1].str);
                 return out;
               }));
}

void SharedSessions::request_termination(const fleet::RemoteSession& session,
                                         const fleet::TerminationRequest& request,
                                         int64_t queue_seconds, std::function<void(Status)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  const std::string& prefix = config_.redis_key_prefix;
  fleet_.client().eval(
      fleet::request_termination_script(),
      {fleet::user_keys(prefix, session.record.user).sessions, fleet::session_records_key(prefix),
       fleet::host_terminate_key(prefix, session.host)},
      {session.record.id,
       fleet_.mac().seal(fleet::host_terminate_key(prefix, session.host),
                         static_cast<uint64_t>(clock_.realtime_usec()),
                         fleet::encode_termination(request)),
       std::to_string(fleet::kMaxQueuedTerminations),
       std::to_string(std::max<int64_t>(1, queue_seconds))},
      reply_to("a termination request", std::move(done),
               [](const RedisReply&) { return Status{}; }));
}

void SharedSessions::take_terminations(const std::string& host,
                                       std::function<void(Result<std::vector<std::string>>)> done) {
  if (fleet_.degraded())
    return done(degraded_now());
  fleet_.client().eval(fleet::take_session_terminations_script(),
                       {fleet::host_terminate_key(config_.redis_key_prefix, host)},
                       {std::to_string(fleet::kTerminationBatch)},
                       reply_to("taking termination requests", std::move(done),
                                [](const RedisReply& r) -> Result<std::vector<std::string>> {
                                  if (r.type != RedisReply::Type::kArray)
                                    return make_error(Errc::kIo,
                                                      "unexpected Redis reply to terminations");
                                  std::vector<std::string> out;
                                  for (const auto& e : r.elements)
                                    out.push_back(e.str);
                                  return out;
                                }));
}

}  // namespace mfa

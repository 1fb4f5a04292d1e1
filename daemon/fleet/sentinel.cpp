#include "fleet/sentinel.hpp"

#include <algorithm>
#include <cstring>

#include "core/log.hpp"

namespace mfa {

namespace {

// A sentinel is asked again this often (a missed +switch-master, a primary named wrongly), and
// one that has not answered by then is passed over for the next.
constexpr uint64_t kPollUsec = 1000 * 1000;
// Questions come no closer than this, however many clients report trouble.
constexpr uint64_t kMinGapUsec = 100 * 1000;
// A sentinel that named a server which is not the primary is passed over this long (unless every
// sentinel is): asking the sentinels in turn must not come back to it within a failover's time.
constexpr uint64_t kDistrustUsec = 60 * 1000 * 1000;
// What a sentinel's connection may hold unparsed: its answers are two short strings and the
// +switch-master messages.
constexpr size_t kMaxSentinelReplyBytes = 4096;
constexpr const char* kSwitchMaster = "+switch-master";

Error sentinel_error(std::string message) {
  return make_error(Errc::kIo, std::move(message));
}

}  // namespace

namespace fleet {

Result<RedisAddress> parse_master_address_reply(const RedisReply& reply, bool tls) {
  if (reply.is_nil())
    return sentinel_error("the sentinel monitors no such master");
  if (reply.is_error())
    return sentinel_error("the sentinel refused: " + reply.str.substr(0, 128));
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2 ||
      reply.elements[0].type != RedisReply::Type::kString ||
      reply.elements[1].type != RedisReply::Type::kString)
    return sentinel_error("the sentinel's answer is not [address, port]");
  const std::string& host = reply.elements[0].str;
  const std::string& port = reply.elements[1].str;
  // An IP literal (at most 45 characters) and at most 5 digits; a host name is refused, as in
  // Address= (a lookup would block the loop, and DNS would choose the server).
  if (host.empty() || host.size() > 45 || port.empty() || port.size() > 5 ||
      host.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos)
    return sentinel_error("the sentinel named no IP address and port");
  const bool v6 = host.find(':') != std::string::npos;
  auto address = parse_sentinel_address((v6 ? "[" + host + "]" : host) + ":" + port, tls);
  if (!address.ok())
    return sentinel_error("the sentinel named no IP address and port");
  return address;
}

bool is_switch_master_of(std::string_view message, std::string_view master_name) {
  const size_t space = message.find(' ');
  return space != std::string_view::npos && message.substr(0, space) == master_name;
}

}  // namespace fleet

SentinelDiscovery::SentinelDiscovery(sd_event* event, Options options)
    : event_(event),
      options_(std::move(options)),
      distrusted_until_(options_.sentinels.size(), 0) {}

SentinelDiscovery::~SentinelDiscovery() {
  close();
}

Result<std::unique_ptr<SentinelDiscovery>> SentinelDiscovery::create(sd_event* event,
                                                                     Options options) {
  if (options.sentinels.empty() || options.sentinels.size() > kMaxRedisSentinels)
    return make_error(Errc::kInvalidArgument, "Sentinels names 1 to 16 sentinels");
  std::unique_ptr<SentinelDiscovery> s(new SentinelDiscovery(event, std::move(options)));
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, 10 * 1000,
                            &SentinelDiscovery::on_timer, s.get());
  if (r < 0)
    return make_error(Errc::kInternal,
                      std::string("cannot add the Sentinel timer: ") + strerror(-r));
  s->timer_.reset(timer);
  (void)sd_event_source_set_enabled(timer, SD_EVENT_OFF);
  (void)sd_event_source_set_description(timer, "redis-sentinel");
  MFA_CHECK(s->open(0));
  return s;
}

void SentinelDiscovery::close() {
  closed_ = true;
  ++generation_;
  if (query_)
    query_->close("shutting down");
  if (hints_)
    hints_->close("shutting down");
  if (timer_)
    (void)sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
}

// Connects to sentinel index: one connection for the questions, one subscribed to the hints (a
// subscribed connection takes no other command).
Status SentinelDiscovery::open(size_t index) {
  ++generation_;
  asking_ = false;
  rotate_ = false;
  hints_.reset();
  query_.reset();
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &opened_usec_);
  const size_t count = options_.sentinels.size();
  current_ = index % count;
  for (size_t i = 0; i < count; ++i) {
    if (distrusted_until_[(index + i) % count] <= opened_usec_) {
      current_ = (index + i) % count;
      break;
    }
  }
  const auto connection = [this] {
    RedisClientOptions o;
    o.address = options_.sentinels[current_];
    o.tls = options_.connection.tls;
    o.user = options_.connection.user;
    o.password = options_.connection.password.clone();
    o.timeout_usec = options_.connection.timeout_usec;
    o.connect_timeout_usec = options_.connection.connect_timeout_usec;
    o.max_reply_bytes = kMaxSentinelReplyBytes;
    return o;
  };
  MFA_TRY(query, RedisClient::create(event_, connection(), [this](bool ready, const std::string&) {
            if (ready)
              ask();
          }));
  query_ = std::move(query);
  MFA_TRY(hints, RedisClient::create(event_, connection(), nullptr));
  hints_ = std::move(hints);
  hints_->subscribe(
      kSwitchMaster, [this] { ask(); },
      [this](const std::string& message) {
        if (fleet::is_switch_master_of(message, options_.master_name)) {
          MFA_LOG_INFO("Redis Sentinel: +switch-master for %s; asking for the primary",
                       options_.master_name.c_str());
          ask();
        }
      });
  schedule(kPollUsec);
  return {};
}

void SentinelDiscovery::attach(RedisClient* client) {
  followers_.push_back(client);
  if (primary_)
    client->set_primary(*primary_);
}

void SentinelDiscovery::detach(RedisClient* client) {
  followers_.erase(std::remove(followers_.begin(), followers_.end(), client), followers_.end());
}

void SentinelDiscovery::suspect(const RedisAddress& primary, bool wrong_role,
                                const std::string& /*why*/) {
  if (closed_)
    return;
  // The primary a sentinel named is not one: that sentinel is passed over for the next (a lying
  // or confused sentinel does not keep the fleet degraded while the others know better). Every
  // client reports it, each at its own time: only the first report moves on, and a report about
  // a primary no longer named changes nothing (it must not move on from the sentinel that named
  // the right one, or come back round to the one that lied).
  if (wrong_role && primary_ && primary_->describe() == primary.describe()) {
    uint64_t now = 0;
    (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
    if (distrusted_until_[named_by_] <= now) {
      MFA_LOG_WARNING("Redis Sentinel at %s named %s, which is not the primary: passed over",
                      options_.sentinels[named_by_].describe().c_str(), primary.describe().c_str());
    }
    distrusted_until_[named_by_] = now + kDistrustUsec;
    if (current_ == named_by_) {
      rotate_ = true;
      schedule(0);
    }
    return;
  }
  ask();
}

void SentinelDiscovery::ask() {
  if (closed_ || asking_ || !query_ || !query_->ready())
    return;
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  if (last_asked_usec_ != 0 && now - last_asked_usec_ < kMinGapUsec) {
    schedule(last_asked_usec_ + kMinGapUsec - now);
    return;
  }
  last_asked_usec_ = now;
  asking_ = true;
  const uint64_t generation = generation_;
  query_->command(
      {"SENTINEL", "get-master-addr-by-name", options_.master_name},
      [this, generation](Result<RedisReply> reply) { answered(generation, std::move(reply)); });
}

void SentinelDiscovery::answered(uint64_t generation, Result<RedisReply> reply) {
  if (generation != generation_ || closed_)
    return;
  asking_ = false;
  const RedisAddress& sentinel = options_.sentinels[current_];
  Result<RedisAddress> address = reply.ok()
                                     ? fleet::parse_master_address_reply(*reply, sentinel.tls)
                                     : Result<RedisAddress>(reply.error());
  if (!address.ok()) {
    const std::string why = "Redis Sentinel at " + sentinel.describe() + " about " +
                            options_.master_name + ": " + address.error().message;
    if (why != last_error_)
      MFA_LOG_WARNING("%s", why.c_str());
    last_error_ = why;
    rotate_ = true;  // the next sentinel is asked (from the loop: this runs in query_'s callback)
    schedule(0);
    return;
  }
  last_error_.clear();
  schedule(kPollUsec);
  named_by_ = current_;
  if (primary_ && primary_->describe() == address->describe())
    return;
  // A report that the previous primary was wrong, made while this answer was on its way, does not
  // pass over the sentinel that gave it.
  rotate_ = false;
  MFA_LOG_INFO("Redis Sentinel at %s: the primary of %s is %s", sentinel.describe().c_str(),
               options_.master_name.c_str(), address->describe().c_str());
  primary_ = *address;
  const auto followers = followers_;
  for (RedisClient* client : followers)
    client->set_primary(*primary_);
}

void SentinelDiscovery::schedule(uint64_t delay_usec) {
  if (!timer_ || closed_)
    return;
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  uint64_t due = now + delay_usec;
  int enabled = SD_EVENT_OFF;
  uint64_t current = 0;
  if (sd_event_source_get_enabled(timer_.get(), &enabled) >= 0 && enabled != SD_EVENT_OFF &&
      sd_event_source_get_time(timer_.get(), &current) >= 0 && current < due)
    due = current;  // an earlier question stays
  int r = sd_event_source_set_time(timer_.get(), due);
  if (r >= 0)
    r = sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_ERROR("cannot arm the Sentinel timer: %s", strerror(-r));
}

int SentinelDiscovery::on_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<SentinelDiscovery*>(userdata);
  try {
    if (self->closed_)
      return 0;
    uint64_t now = 0;
    (void)sd_event_now(self->event_, CLOCK_MONOTONIC, &now);
    const bool silent = !self->query_ || !self->query_->ready();
    if (self->rotate_ || (silent && now - self->opened_usec_ >= kPollUsec)) {
      Status opened = self->open(self->current_ + 1);
      if (!opened.ok()) {
        MFA_LOG_ERROR("Redis Sentinel: %s", opened.error().message.c_str());
        self->schedule(kPollUsec);
      }
      return 0;
    }
    self->schedule(kPollUsec);
    self->ask();
  } catch (...) {
    MFA_LOG_ERROR("Redis Sentinel: asking for the primary failed");
  }
  return 0;
}

}  // namespace mfa

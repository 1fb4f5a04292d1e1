#include "sms/sender.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/crypto.hpp"
#include "common/secret_file.hpp"
#include "core/log.hpp"
#include "sms/provider_response.hpp"

namespace mfa {

namespace {

constexpr int kMaxTries = 3;
constexpr uint64_t kRetryBudgetUsec = 9 * 1000000ULL;  // all tries inside PAM's 10 s call timeout
constexpr long kConnectTimeoutMs = 3000;
constexpr long kTryTimeoutMs = 6000;
constexpr uint64_t kBackoffBaseUsec = 500 * 1000;
constexpr size_t kMaxTokenFile = 4096;
constexpr size_t kMaxInFlight = 1024;

using CurlSlistPtr = std::unique_ptr<curl_slist, Deleter<curl_slist_free_all>>;
using CurlUrlPtr = std::unique_ptr<CURLU, Deleter<curl_url_cleanup>>;

uint64_t now_monotonic(sd_event* event) {
  uint64_t now = 0;
  if (sd_event_now(event, CLOCK_MONOTONIC, &now) < 0)
    return 0;
  return now;
}

// A token file (common/secret_file.hpp): private to its owner, one word of printable ASCII.
Result<SecureString> read_token_file(const std::string& path) {
  return read_secret_file(path, {"the token file", SecretFormat::kToken, kMaxTokenFile});
}

// The systemd credential NAME ($CREDENTIALS_DIRECTORY/NAME), when the unit passes one.
std::optional<std::string> credential_path(const char* name) {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (!dir || dir[0] != '/')
    return std::nullopt;
  std::string path = std::string(dir) + "/" + name;
  if (access(path.c_str(), F_OK) != 0)
    return std::nullopt;
  return path;
}

// https://, or http:// to a loopback host (the tests' local provider): TLS is never optional on
// a network.
Status check_url(const std::string& url) {
  CurlUrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
    return make_error(Errc::kInvalidArgument, "the provider URL is not a valid URL");
  char* scheme = nullptr;
  char* host = nullptr;
  curl_url_get(u.get(), CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(u.get(), CURLUPART_HOST, &host, 0);
  const std::string s = scheme ? scheme : "";
  const std::string h = host ? host : "";
  curl_free(scheme);
  curl_free(host);
  if (s == "https")
    return {};
  if (s == "http" && (h == "127.0.0.1" || h == "localhost" || h == "[::1]" || h == "::1"))
    return {};
  return make_error(Errc::kInvalidArgument,
                    "the provider URL must use https:// (http:// only to a loopback address)");
}

void append_escaped(CURL* easy, SecureString* out, std::string_view value) {
  char* escaped = curl_easy_escape(easy, value.data(), static_cast<int>(value.size()));
  if (!escaped)
    return;
  out->append(escaped);
  secure_erase(escaped, std::strlen(escaped));
  curl_free(escaped);
}

void append_json_string(SecureString* out, std::string_view value) {
  out->append("\"");
  for (char c : value) {
    if (c == '"' || c == '\\') {
      const char esc[2] = {'\\', c};
      out->append(std::string_view(esc, 2));
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out->append(" ");
    } else {
      out->append(std::string_view(&c, 1));
    }
  }
  out->append("\"");
}

}  // namespace

struct SmsSender::Request {
  SmsSender* owner = nullptr;
  SecureString payload;  // holds the number and the code: erased when the request goes
  Done done;
  CurlPtr easy;
  CurlSlistPtr headers;
  int tries = 0;
  uint64_t started_usec = 0;
  EventSourcePtr retry;
  EventSourcePtr defer;
  SmsDelivery early;  // an answer known before any transfer (configuration, limits)
  std::string response;
  std::array<char, CURL_ERROR_SIZE> error{};
  bool in_multi = false;

  static size_t on_write(char* data, size_t size, size_t n, void* userdata) noexcept {
    try {
      auto* r = static_cast<Request*>(userdata);
      const size_t len = size * n;
      if (r->response.size() < kMaxSmsResponse)
        r->response.append(data, std::min(len, kMaxSmsResponse - r->response.size()));
      return len;
    } catch (...) {
      return 0;  // aborts this transfer
    }
  }
};

SmsSender::SmsSender(sd_event* event, const Config& config) : event_(event), config_(config) {}

Result<std::unique_ptr<SmsSender>> SmsSender::create(sd_event* event, const Config& config) {
  std::unique_ptr<SmsSender> s(new SmsSender(event, config));
  if (config.sms_provider == SmsProvider::kNone) {
    s->problem_ = "SMS is not configured on this host";
    return s;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return make_error(Errc::kInternal, "cannot initialize libcurl");
  s->curl_initialized_ = true;
  CURLM* multi = curl_multi_init();
  if (!multi)
    return make_error(Errc::kInternal, "cannot initialize libcurl's multi interface");
  s->multi_.reset(multi);
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &SmsSender::on_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, s.get());
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &SmsSender::on_curl_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, s.get());
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, &SmsSender::on_timer,
                            s.get());
  if (r < 0)
    return make_error(Errc::kInternal, std::string("cannot add the SMS timer: ") + strerror(-r));
  s->timer_.reset(timer);
  sd_event_source_set_enabled(timer, SD_EVENT_OFF);

  if (auto st = s->configure(); !st.ok()) {
    s->problem_ = "SMS is unavailable: " + st.error().message;
    MFA_LOG_ERROR("SMS provider unusable, every SMS send will fail: %s",
                  st.error().message.c_str());
  }
  return s;
}

Status SmsSender::configure() {
  if (config_.sms_provider == SmsProvider::kTwilio) {
    const std::string& sid = config_.twilio_account_sid;
    if (sid.empty() || sid.size() > 64 ||
        !std::all_of(sid.begin(), sid.end(), [](char c) { return std::isalnum(c) != 0; }))
      return make_error(Errc::kInvalidArgument, "[Twilio] AccountSid must be letters and digits");
    std::string base = config_.twilio_base_url;
    while (!base.empty() && base.back() == '/')
      base.pop_back();
    url_ = base + "/2010-04-01/Accounts/" + sid + "/Messages.json";
    user_ = sid;
    if (!config_.twilio_auth_token_file.empty()) {
      MFA_TRY(token, read_token_file(config_.twilio_auth_token_file));
      token_ = std::move(token);
    } else if (!config_.twilio_auth_token.empty()) {
      token_ = SecureString(config_.twilio_auth_token);
    } else if (auto path = credential_path("twilio-token")) {
      MFA_TRY(token, read_token_file(*path));
      token_ = std::move(token);
    } else {
      return make_error(Errc::kInvalidArgument,
                        "no Twilio auth token ([Twilio] AuthTokenFile or the credential "
                        "twilio-token)");
    }
  } else {
    url_ = config_.webhook_url;
    if (!config_.webhook_bearer_token_file.empty()) {
      MFA_TRY(token, read_token_file(config_.webhook_bearer_token_file));
      token_ = std::move(token);
    } else if (auto path = credential_path("webhook-token")) {
      MFA_TRY(token, read_token_file(*path));
      token_ = std::move(token);
    } else {
      return make_error(Errc::kInvalidArgument,
                        "no webhook token ([Webhook] BearerTokenFile or the credential "
                        "webhook-token)");
    }
  }
  return check_url(url_);
}

SmsSender::~SmsSender() {
  for (auto& [raw, request] : requests_) {
    if (request->in_multi && multi_)
      curl_multi_remove_handle(multi_.get(), request->easy.get());
    request->in_multi = false;
  }
  requests_.clear();
  sockets_.clear();
  timer_.reset();
  multi_.reset();
  if (curl_initialized_)
    curl_global_cleanup();
}

void SmsSender::send(SecureString to, SecureString body, Done done) {
  auto request = std::make_unique<Request>();
  Request* r = request.get();
  r->owner = this;
  r->done = std::move(done);
  r->started_usec = now_monotonic(event_);
  requests_.emplace(r, std::move(request));

  Status st = [&]() -> Status {
    if (!problem_.empty())
      return make_error(Errc::kSmsUnavailable, problem_);
    if (requests_.size() > kMaxInFlight)
      return make_error(Errc::kLimitExceeded, "too many texts are in flight; try again shortly");
    CURL* easy = curl_easy_init();
    if (!easy)
      return make_error(Errc::kInternal, "cannot create a transfer");
    r->easy.reset(easy);
    if (config_.sms_provider == SmsProvider::kTwilio) {
      r->payload.append("To=");
      append_escaped(easy, &r->payload, to.view());
      if (!config_.twilio_messaging_service_sid.empty()) {
        r->payload.append("&MessagingServiceSid=");
        append_escaped(easy, &r->payload, config_.twilio_messaging_service_sid);
      } else {
        r->payload.append("&From=");
        append_escaped(easy, &r->payload, config_.twilio_from);
      }
      r->payload.append("&Body=");
      append_escaped(easy, &r->payload, body.view());
      curl_easy_setopt(easy, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl_easy_setopt(easy, CURLOPT_USERNAME, user_.c_str());
      curl_easy_setopt(easy, CURLOPT_PASSWORD, token_.c_str());
    } else {
      r->payload.append("{\"to\":");
      append_json_string(&r->payload, to.view());
      r->payload.append(",\"body\":");
      append_json_string(&r->payload, body.view());
      r->payload.append("}");
      r->headers.reset(curl_slist_append(nullptr, "Content-Type: application/json"));
      curl_easy_setopt(easy, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BEARER));
      curl_easy_setopt(easy, CURLOPT_XOAUTH2_BEARER, token_.c_str());
    }
    curl_slist* h = curl_slist_append(r->headers.get(), "Accept: application/json");
    if (!h)
      return make_error(Errc::kInternal, "out of memory");
    r->headers.release();
    r->headers.reset(h);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers.get());
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->payload.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(r->payload.size()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "mfad/" MFA_VERSION);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Request::on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->error.data());
    return start(*r);
  }();
  if (st.ok())
    return;
  // Answer from the loop, never from inside the caller's stack.
  r->early.status = st.error().code == Errc::kSmsUnavailable ? SmsDeliveryStatus::kUnavailable
                                                             : SmsDeliveryStatus::kFailed;
  r->early.reason = st.error().code == Errc::kSmsUnavailable ? AuditReason::kSmsUnavailable
                                                             : AuditReason::kSenderError;
  r->early.message = st.error().code == Errc::kSmsUnavailable
                         ? st.error().message
                         : "The text could not be sent: " + st.error().message;
  sd_event_source* defer = nullptr;
  if (sd_event_add_defer(event_, &defer, &SmsSender::on_deferred, r) < 0) {
    finish(r, r->early);  // last resort: answer now
    return;
  }
  r->defer.reset(defer);
}

Status SmsSender::start(Request& r) {
  ++r.tries;
  r.response.clear();
  r.error[0] = '\0';
  const uint64_t elapsed = now_monotonic(event_) - r.started_usec;
  const uint64_t left_ms = elapsed >= kRetryBudgetUsec ? 1000 : (kRetryBudgetUsec - elapsed) / 1000;
  curl_easy_setopt(r.easy.get(), CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::clamp<uint64_t>(left_ms, 1000, kTryTimeoutMs)));
  const CURLMcode mc = curl_multi_add_handle(multi_.get(), r.easy.get());
  if (mc != CURLM_OK)
    return make_error(Errc::kInternal, curl_multi_strerror(mc));
  r.in_multi = true;
  return {};
}

void SmsSender::finish(Request* request, SmsDelivery delivery) {
  auto it = requests_.find(request);
  if (it == requests_.end())
    return;
  std::unique_ptr<Request> owned = std::move(it->second);
  requests_.erase(it);
  if (owned->in_multi)
    curl_multi_remove_handle(multi_.get(), owned->easy.get());
  owned->in_multi = false;
  Done done = std::move(owned->done);
  owned.reset();
  try {
    if (done)
      done(delivery);
  } catch (...) {
    MFA_LOG_ERROR("internal error while answering an SMS request");
  }
}

void SmsSender::cancel_all() {
  while (!requests_.empty()) {
    SmsDelivery d;
    d.status = SmsDeliveryStatus::kFailed;
    d.reason = AuditReason::kShutdown;
    d.message = "mfad is shutting down; the text may not have been sent";
    d.tries = requests_.begin()->second->tries;
    finish(requests_.begin()->first, d);
  }
}

void SmsSender::on_transfer_done(Request* r, int curl_code) {
  curl_multi_remove_handle(multi_.get(), r->easy.get());
  r->in_multi = false;
  const auto rc = static_cast<CURLcode>(curl_code);
  long http = 0;
  curl_easy_getinfo(r->easy.get(), CURLINFO_RESPONSE_CODE, &http);
  SmsDelivery d;
  d.tries = r->tries;
  d.http_status = http;
  bool retry = false;
  uint64_t retry_after_usec = 0;
  if (rc == CURLE_OK) {
    SmsResponse response = classify_sms_response(http, r->response);
    d = std::move(response.delivery);
    d.tries = r->tries;
    retry = response.retry;
    if (retry) {
      curl_off_t after = 0;
      if (curl_easy_getinfo(r->easy.get(), CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0)
        retry_after_usec = static_cast<uint64_t>(std::min<curl_off_t>(after, 3600)) * 1000000ULL;
    }
    if (d.reason == AuditReason::kProviderAuth) {
      MFA_LOG_ERROR(
          "ALERT: the SMS provider refused mfad's credentials (HTTP %ld, code %ld): check the "
          "account and token in mfad.conf; no text can be sent until this is fixed",
          http, d.provider_code);
    }
  } else {
    curl_off_t connect_usec = 0;
    curl_easy_getinfo(r->easy.get(), CURLINFO_CONNECT_TIME_T, &connect_usec);
    const bool never_connected = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                                 rc == CURLE_COULDNT_RESOLVE_PROXY ||
                                 (rc == CURLE_OPERATION_TIMEDOUT && connect_usec == 0);
    if (never_connected) {
      retry = true;
      d.status = SmsDeliveryStatus::kFailed;
      d.reason = AuditReason::kProviderUnreachable;
      d.message = "The SMS provider could not be reached";
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      d.status = SmsDeliveryStatus::kFailed;
      d.reason = AuditReason::kProviderTimeout;
      d.message =
          "The SMS provider did not answer in time; the text may have been sent, so it was not "
          "sent again";
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
               rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      d.status = SmsDeliveryStatus::kUnavailable;
      d.reason = AuditReason::kProviderTls;
      d.message = "SMS is unavailable: the provider's TLS connection could not be verified";
      MFA_LOG_ERROR("ALERT: SMS provider TLS failure: %s", curl_easy_strerror(rc));
    } else {
      d.status = SmsDeliveryStatus::kFailed;
      d.reason = AuditReason::kProviderError;
      d.message = std::string("The text could not be sent: ") + curl_easy_strerror(rc);
    }
  }

  if (retry) {
    if (r->tries < kMaxTries) {
      // Full jitter on an exponential base: 0.5 s then 1 s (halves to whole), or Retry-After.
      const uint64_t base = kBackoffBaseUsec << (r->tries - 1);
      uint64_t delay = base / 2 + random_uniform(static_cast<uint32_t>(base / 2 + 1));
      delay = std::max(delay, retry_after_usec);
      const uint64_t now = now_monotonic(event_);
      if (now - r->started_usec + delay + 1000000 <= kRetryBudgetUsec) {
        sd_event_source* timer = nullptr;
        if (sd_event_add_time(event_, &timer, CLOCK_MONOTONIC, now + delay, 1000,
                              &SmsSender::on_retry, r) >= 0) {
          r->retry.reset(timer);
          return;
        }
      } else if (retry_after_usec > 0) {
        d.message = "The SMS provider asked to wait " + std::to_string(retry_after_usec / 1000000) +
                    " s; try again later";
      }
    }
  }
  if (d.status != SmsDeliveryStatus::kAccepted) {
    MFA_LOG_WARNING("SMS send failed after %d tries: %s (HTTP %ld)", d.tries,
                    audit_reason_name(d.reason), d.http_status);
  }
  finish(r, d);
}

void SmsSender::process_done() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL* easy = msg->easy_handle;
    const CURLcode rc = msg->data.result;
    char* priv = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    auto* r = reinterpret_cast<Request*>(priv);
    if (r && requests_.count(r))
      on_transfer_done(r, rc);
  }
}

void SmsSender::arm_timer(long timeout_ms) {
  if (timeout_ms < 0) {
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
    return;
  }
  const uint64_t at = now_monotonic(event_) + static_cast<uint64_t>(timeout_ms) * 1000;
  if (sd_event_source_set_time(timer_.get(), at) < 0 ||
      sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT) < 0)
    MFA_LOG_WARNING("cannot arm the SMS timer");
}

int SmsSender::on_socket(CURL* /*easy*/, curl_socket_t fd, int what, void* userp,
                         void* /*socketp*/) {
  try {
    auto* self = static_cast<SmsSender*>(userp);
    if (what == CURL_POLL_REMOVE) {
      self->sockets_.erase(fd);
      return 0;
    }
    uint32_t events = 0;
    if (what & CURL_POLL_IN)
      events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
      events |= EPOLLOUT;
    auto it = self->sockets_.find(fd);
    if (it != self->sockets_.end()) {
      return sd_event_source_set_io_events(it->second.get(), events) < 0 ? -1 : 0;
    }
    sd_event_source* source = nullptr;
    if (sd_event_add_io(self->event_, &source, fd, events, &SmsSender::on_io, self) < 0)
      return -1;
    self->sockets_.emplace(fd, EventSourcePtr(source));
    return 0;
  } catch (...) {
    return -1;
  }
}

int SmsSender::on_curl_timer(CURLM* /*multi*/, long timeout_ms, void* userp) {
  try {
    static_cast<SmsSender*>(userp)->arm_timer(timeout_ms);
    return 0;
  } catch (...) {
    return -1;
  }
}

int SmsSender::on_io(sd_event_source* /*s*/, int fd, uint32_t revents, void* userdata) {
  try {
    auto* self = static_cast<SmsSender*>(userdata);
    int action = 0;
    if (revents & EPOLLIN)
      action |= CURL_CSELECT_IN;
    if (revents & EPOLLOUT)
      action |= CURL_CSELECT_OUT;
    if (revents & (EPOLLERR | EPOLLHUP))
      action |= CURL_CSELECT_ERR;
    int running = 0;
    curl_multi_socket_action(self->multi_.get(), fd, action, &running);
    self->process_done();
  } catch (...) {
    MFA_LOG_ERROR("internal error in the SMS sender");
  }
  return 0;
}

int SmsSender::on_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  try {
    auto* self = static_cast<SmsSender*>(userdata);
    int running = 0;
    curl_multi_socket_action(self->multi_.get(), CURL_SOCKET_TIMEOUT, 0, &running);
    self->process_done();
  } catch (...) {
    MFA_LOG_ERROR("internal error in the SMS sender");
  }
  return 0;
}

int SmsSender::on_retry(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  try {
    auto* r = static_cast<Request*>(userdata);
    SmsSender* self = r->owner;
    r->retry.reset();  // safe: sd-event defers freeing a source inside its own callback
    if (auto st = self->start(*r); !st.ok()) {
      SmsDelivery d;
      d.status = SmsDeliveryStatus::kFailed;
      d.reason = AuditReason::kSenderError;
      d.message = "The text could not be sent: " + st.error().message;
      d.tries = r->tries;
      self->finish(r, d);
    }
  } catch (...) {
    MFA_LOG_ERROR("internal error in the SMS sender");
  }
  return 0;
}

int SmsSender::on_deferred(sd_event_source* /*s*/, void* userdata) {
  try {
    auto* r = static_cast<Request*>(userdata);
    r->owner->finish(r, r->early);
  } catch (...) {
    MFA_LOG_ERROR("internal error in the SMS sender");
  }
  return 0;
}

}  // namespace mfa

// Sends texts through the configured provider (docs/sms.md) without ever blocking mfad's loop:
// libcurl's multi interface driven by sd-event (CURLMOPT_SOCKETFUNCTION → sd_event_add_io,
// CURLMOPT_TIMERFUNCTION → an sd-event timer), no thread, no blocking call.
//
// Retries (Twilio: a 429 was "never processed, always safe to retry"): on 429 and on failures to
// connect, up to kMaxTries tries within about kRetryBudget, jittered exponential backoff that
// honours Retry-After. A 5xx or a timeout after the request went out may have delivered the text:
// no blind retry. 401/403 are configuration errors; other 4xx are errors of this recipient.
#pragma once

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "core/config.hpp"
#include "core/sms_delivery.hpp"

namespace mfa {

using CurlPtr = std::unique_ptr<CURL, Deleter<curl_easy_cleanup>>;
using CurlMultiPtr = std::unique_ptr<CURLM, Deleter<curl_multi_cleanup>>;

class SmsSender {
 public:
  using Done = std::function<void(const SmsDelivery&)>;

  // Never fails for a bad provider configuration (unreadable token file, plain http:// to a
  // remote host...): TOTP logins must go on; every send then ends kUnavailable with the reason,
  // which is also logged here once.
  static Result<std::unique_ptr<SmsSender>> create(sd_event* event, const Config& config);
  ~SmsSender();
  SmsSender(const SmsSender&) = delete;
  SmsSender& operator=(const SmsSender&) = delete;

  // Sends body to `to` (E.164). done runs exactly once, later, from the event loop.
  void send(SecureString to, SecureString body, Done done);
  // Shutdown: every send still in flight ends kFailed now.
  void cancel_all();
  size_t in_flight() const { return requests_.size(); }

 private:
  struct Request;
  SmsSender(sd_event* event, const Config& config);

  Status configure();
  Status start(Request& request);
  void finish(Request* request, SmsDelivery delivery);  // by value: it may live in *request
  void on_transfer_done(Request* request, int curl_code);
  void process_done();
  void arm_timer(long timeout_ms);

  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static int on_curl_timer(CURLM* multi, long timeout_ms, void* userp);
  static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
  static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);
  static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);
  static int on_deferred(sd_event_source* s, void* userdata);

  sd_event* event_;
  const Config& config_;
  CurlMultiPtr multi_;
  EventSourcePtr timer_;
  std::map<int, EventSourcePtr> sockets_;
  std::map<Request*, std::unique_ptr<Request>> requests_;
  std::string problem_;  // why SMS cannot work here ("" = ready)
  std::string url_;
  std::string user_;    // Twilio: Account SID (HTTP Basic user name)
  SecureString token_;  // Twilio auth token or webhook bearer token
  bool curl_initialized_ = false;
};

}  // namespace mfa

// The decisions of mfad (daemon/authenticator.cpp) against a real SqliteStore on a temp file, a
// FakeClock and a fake user directory. Codes are computed with mfa::totp, as an app would.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/backup_codes.hpp"
#include "common/base32.hpp"
#include "common/crypto.hpp"
#include "common/dbus_names.hpp"
#include "common/enrollment_card.hpp"
#include "common/otp.hpp"
#include "common/seal.hpp"
#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/sms_codes.hpp"
#include "core/sms_delivery.hpp"
#include "core/sms_phone.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "storage/sqlite_store.hpp"
#include "core_fakes.hpp"

// Last: cmocka defines fail() and friends as macros.
extern "C" {
#include <cmocka.h>
}

using namespace mfa;
using namespace mfa::test;

namespace {

// Forwards to the real store; fails chosen operations on demand, as a full disk would.
class FailingStore final : public Store {
 public:
  explicit FailingStore(Store& inner) : s_(inner) {}
  bool fail_reads = false, fail_writes = false, fail_audit = false, fail_consume = false;
  bool refuse_advance = false;  // another host took the step first

  Result<std::vector<FactorRecord>> get_factors(std::string_view u) override {
    if (fail_reads)
      return err();
    return s_.get_factors(u);
  }
  Status put_factor(std::string_view u, const FactorRecord& r) override {
    if (fail_writes)
      return err();
    return s_.put_factor(u, r);
  }
  Status delete_factor(std::string_view u, Method m, bool p) override {
    if (fail_writes)
      return err();
    return s_.delete_factor(u, m, p);
  }
  Result<std::optional<SmsCode>> get_sms_code(std::string_view u, std::string_view p) override {
    if (fail_reads)
      return err();
    return s_.get_sms_code(u, p);
  }
  Status put_sms_code(std::string_view u, std::string_view p, const SmsCode& c) override {
    if (fail_writes)
      return err();
    return s_.put_sms_code(u, p, c);
  }
  Status delete_sms_code(std::string_view u, std::string_view p) override {
    if (fail_writes)
      return err();
    return s_.delete_sms_code(u, p);
  }
  Status record_sms_send(std::string_view u, std::string_view k, int64_t t, int64_t f) override {
    if (fail_writes)
      return err();
    return s_.record_sms_send(u, k, t, f);
  }
  Result<SmsSendCounts> count_sms_sends(std::string_view u, std::string_view k,
                                        int64_t since) override {
    if (fail_reads)
      return err();
    return s_.count_sms_sends(u, k, since);
  }
  Result<int> count_other_sms_phones(std::string_view u, std::string_view k,
                                     int64_t since) override {
    if (fail_reads)
      return err();
    return s_.count_other_sms_phones(u, k, since);
  }
  Result<std::vector<std::string>> list_users() override {
    if (fail_reads)
      return err();
    return s_.list_users();
  }
  Status delete_user(std::string_view u) override {
    if (fail_writes)
      return err();
    return s_.delete_user(u);
  }
  Result<std::optional<uint64_t>> get_totp_watermark(std::string_view u,
                                                     std::string_view d) override {
    if (fail_reads)
      return err();
    return s_.get_totp_watermark(u, d);
  }
  Result<bool> advance_totp_watermark(std::string_view u, std::string_view d,
                                      uint64_t step) override {
    if (fail_writes)
      return err();
    if (refuse_advance)
      return false;
    return s_.advance_totp_watermark(u, d, step);
  }
  Status set_totp_watermark(std::string_view u, std::string_view d,
                            std::optional<uint64_t> step) override {
    if (fail_writes)
      return err();
    return s_.set_totp_watermark(u, d, step);
  }
  Status delete_totp_device(std::string_view u, std::string_view d, bool p) override {
    if (fail_writes)
      return err();
    return s_.delete_totp_device(u, d, p);
  }
  Status replace_backup_codes(std::string_view u, const std::vector<CodeHash>& h) override {
    if (fail_writes)
      return err();
    return s_.replace_backup_codes(u, h);
  }
  Result<bool> consume_backup_code(std::string_view u, const CodeHash& h) override {
    if (fail_writes || fail_consume)
      return err();
    return s_.consume_backup_code(u, h);
  }
  Result<int> count_backup_codes(std::string_view u) override {
    if (fail_reads)
      return err();
    return s_.count_backup_codes(u);
  }
  Status delete_backup_codes(std::string_view u) override {
    if (fail_writes)
      return err();
    return s_.delete_backup_codes(u);
  }
  Result<LimitState> get_limits(std::string_view u) override {
    if (fail_reads)
      return err();
    return s_.get_limits(u);
  }
  Status put_limits(std::string_view u, const LimitState& st) override {
    if (fail_writes)
      return err();
    return s_.put_limits(u, st);
  }
  Status append_audit(AuditRecord& r) override {
    if (fail_writes || fail_audit)
      return err();
    return s_.append_audit(r);
  }
  Status put_enrollment_token(std::string_view u, const CodeHash& h, int64_t c,
                              int64_t x) override {
    if (fail_writes)
      return err();
    return s_.put_enrollment_token(u, h, c, x);
  }
  Result<bool> spend_enrollment_token(std::string_view u, const CodeHash& h, int64_t n) override {
    if (fail_writes)
      return err();
    return s_.spend_enrollment_token(u, h, n);
  }
  Result<std::vector<AuditRecord>> query_audit(const AuditFilter& f) override {
    if (fail_reads)
      return err();
    return s_.query_audit(f);
  }
  Result<AuditVerification> verify_audit_chain() override { return s_.verify_audit_chain(); }
  Status prune_audit(int64_t c) override { return s_.prune_audit(c); }
  Status flush() override { return s_.flush(); }
  bool in_transaction() const override { return s_.in_transaction(); }

 private:
  static Error err() { return make_error(Errc::kStorage, "disk I/O error (injected)"); }
  Store& s_;
};

Config test_config() {
  Config c;
  c.issuer = "Example";
  return c;
}

struct Env {
  explicit Env(Config cfg = test_config()) : config(std::move(cfg)) {
    char tmpl[] = "/tmp/mfad-auth-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    dir = tmpl;
    // The data keys (core/data_keys.hpp) beside the database.
    config.state_directory = dir;
    auto opened = SqliteStore::open(dir + "/mfad.db", clock);
    assert_true(opened.ok());
    sqlite = std::move(opened).value();
    store = std::make_unique<FailingStore>(*sqlite);
    audit = std::make_unique<AuditLog>(*store, clock);
    audit->set_user_directory(&users);
    std::vector<uint8_t> master(32);
    for (size_t i = 0; i < master.size(); ++i)
      master[i] = static_cast<uint8_t>(i * 7 + 1);
    auto s = Sealer::create(master);
    assert_true(s.ok());
    sealer.emplace(std::move(s).value());
    auto k = hkdf_sha256(master, "mfad code hash v1", 32);
    assert_true(k.ok());
    hash_key = std::move(k).value();
    auth = std::make_unique<Authenticator>(
        AuthenticatorDeps{config, *store, *audit, *sealer, hash_key, clock, users, &events});
  }
  ~Env() {
    auth.reset();
    audit.reset();
    store.reset();
    sqlite.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::vector<AuditRecord> audit_rows(const std::string& kind = "") {
    AuditFilter f;
    f.limit = 10000;
    auto rows = sqlite->query_audit(f);
    assert_true(rows.ok());
    std::vector<AuditRecord> out;
    for (auto& r : *rows)
      if (kind.empty() || r.kind == kind)
        out.push_back(r);
    return out;
  }

  std::string dir;
  FakeClock clock;
  std::unique_ptr<SqliteStore> sqlite;
  std::unique_ptr<FailingStore> store;
  std::unique_ptr<AuditLog> audit;
  std::optional<Sealer> sealer;
  SecureBytes hash_key;
  FakeUsers users;
  RecordingSink events;
  Config config;
  std::unique_ptr<Authenticator> auth;
};

// Challenges belong to a process (uid and pid) and a cap makes room by dropping those whose
// process has exited: the root callers are processes that live as long as the test.
const Caller kRoot{0, getpid(), ":1.10"};
const Caller kRootOther{0, getppid(), ":1.11"};
const Caller kAliceC{kAlice, 200, ":1.20"};
const Caller kBobC{kBob, 201, ":1.21"};
const Caller kCarolC{kCarol, 202, ":1.22"};

#define ASSERT_OK(r)                                                \
  do {                                                              \
    const auto& r_ = (r);                                           \
    if (!r_.ok())                                                   \
      fail_msg("unexpected error: %s", r_.error().message.c_str()); \
  } while (0)
#define ASSERT_ERR(r, kind)                                                          \
  do {                                                                               \
    const auto& r_ = (r);                                                            \
    assert_false(r_.ok());                                                           \
    if (r_.error().code != (kind))                                                   \
      fail_msg("error kind %d (%s), expected %d", static_cast<int>(r_.error().code), \
               r_.error().message.c_str(), static_cast<int>(kind));                  \
  } while (0)

std::string code_at(const SecureBytes& key, int64_t t, const TotpParams& p = {}) {
  return std::string(totp(key.span(), t, p).view());
}
std::string code_now(Env& e, const SecureBytes& key, const TotpParams& p = {}) {
  return code_at(key, e.clock.now_seconds(), p);
}

// Enrolls TOTP for user as root (no step-up), then lets one period pass so that the confirming
// code's step is behind the watermark.
SecureBytes enroll_totp(Env& e, const std::string& user, TotpEnrollmentOptions opts = {}) {
  auto begun = e.auth->begin_totp_enrollment(kRoot, user, opts);
  ASSERT_OK(begun);
  auto secret = base32_decode(begun->secret_base32.view());
  assert_true(secret.ok());
  TotpParams p;
  if (opts.digits)
    p.digits = opts.digits;
  if (!opts.algorithm.empty())
    p.algorithm = *parse_otp_algorithm(opts.algorithm);
  ASSERT_OK(e.auth->confirm_totp_enrollment(kRoot, user, code_now(e, *secret, p)));
  e.clock.advance_seconds(30);
  return std::move(secret).value();
}

std::vector<std::string> backup_codes_for(Env& e, const std::string& user) {
  auto codes = e.auth->generate_backup_codes(kRoot, user, "");
  ASSERT_OK(codes);
  std::vector<std::string> out;
  for (const auto& c : *codes)
    out.emplace_back(c.view());
  return out;
}

std::string begin(Env& e, const std::string& user, const Caller& c = kRoot,
                  StringMap ctx = {{"service", "sshd"}, {"rhost", "10.0.0.5"}}) {
  auto r = e.auth->begin_authentication(c, user, ctx);
  ASSERT_OK(r);
  return r->challenge;
}

// --- Enrollment ---

void test_totp_enrollment_two_phase(void**) {
  Env e;
  TotpEnrollmentOptions opts;
  auto begun = e.auth->begin_totp_enrollment(kAliceC, "alice", opts);  // first factor: no step-up
  ASSERT_OK(begun);
  assert_int_equal(begun->secret_base32.size(), 32);
  const std::string uri(begun->otpauth_uri.view());
  assert_true(uri.starts_with("otpauth://totp/Example:alice?"));
  assert_true(uri.find("secret=" + std::string(begun->secret_base32.view())) != std::string::npos);
  assert_true(uri.find("algorithm=SHA1") != std::string::npos);
  auto secret = base32_decode(begun->secret_base32.view());
  assert_true(secret.ok());

  auto info = e.auth->get_user(kAliceC, "alice");
  ASSERT_OK(info);
  assert_true(info->methods.empty());
  assert_int_equal(info->pending.size(), 1);
  assert_string_equal(info->pending[0].c_str(), "totp");
  // Pending is not usable for logins.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kNotEnrolled);

  // A wrong confirmation code fails and leaves the enrollment pending.
  const std::string good = code_now(e, *secret);
  const std::string wrong = good == "000000" ? "111111" : "000000";
  auto bad = e.auth->confirm_totp_enrollment(kAliceC, "alice", wrong);
  ASSERT_ERR(bad, Errc::kBadCode);
  assert_true(bad.error().message.starts_with("Invalid code"));
  info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->pending.size(), 1);
  assert_int_equal(info->failures, 1);

  ASSERT_OK(e.auth->confirm_totp_enrollment(kAliceC, "alice", good));
  info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->methods.size(), 1);
  assert_string_equal(info->methods[0].c_str(), "totp");
  assert_true(info->pending.empty());
  assert_int_equal(info->failures, 0);
  assert_true(info->totp.has_value());
  assert_int_equal(info->totp->digits, 6);

  // The confirming code cannot be replayed for a login.
  auto ch = begin(e, "alice");
  ASSERT_ERR(e.auth->verify(kRoot, ch, good), Errc::kBadCode);

  ASSERT_ERR(e.auth->confirm_totp_enrollment(kAliceC, "alice", good), Errc::kNoPendingEnrollment);
  ASSERT_ERR(e.auth->begin_totp_enrollment(kRoot, "alice", opts), Errc::kAlreadyEnrolled);

  // Audit: begin and confirm recorded, never the secret or a code.
  assert_int_equal(e.audit_rows("enroll.begin").size(), 1);
  auto confirms = e.audit_rows("enroll.confirm");
  assert_int_equal(confirms.size(), 2);  // the failure and the success
  for (const auto& r : e.audit_rows()) {
    assert_true(r.details_json.find(begun->secret_base32.view()) == std::string::npos);
    assert_true(r.details_json.find(good) == std::string::npos);
    assert_true(r.reason.find(good) == std::string::npos);
  }
}

void test_enrollment_options(void**) {
  Env e;
  TotpEnrollmentOptions o;
  o.issuer = "a:b";
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", o), Errc::kInvalidArgument);
  o.issuer = std::string(129, 'x');
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", o), Errc::kInvalidArgument);
  o.issuer = "bad\xff";
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", o), Errc::kInvalidArgument);
  o.issuer = "Corp";
  o.algorithm = "MD5";
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", o), Errc::kInvalidArgument);
  o.algorithm = "SHA256";
  o.digits = 9;
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", o), Errc::kInvalidArgument);
  o.digits = 5;
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", o), Errc::kInvalidArgument);
  assert_int_equal(e.audit_rows("enroll.begin").size(), 0);

  // SHA256 / 8 digits end to end.
  o.digits = 8;
  auto key = enroll_totp(e, "alice", {.issuer = "Corp", .algorithm = "SHA256", .digits = 8});
  TotpParams p{OtpAlgorithm::kSha256, 8, 30};
  auto info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->totp->digits, 8);
  assert_int_equal(static_cast<int>(info->totp->algorithm),
                   static_cast<int>(OtpAlgorithm::kSha256));
  auto ch = begin(e, "alice");
  ASSERT_ERR(e.auth->verify(kRoot, ch, code_now(e, key)), Errc::kBadCode);  // 6-digit SHA1
  auto ok = e.auth->verify(kRoot, ch, code_now(e, key, p));
  ASSERT_OK(ok);
  assert_string_equal(ok->c_str(), "totp");

  // A second begin replaces the pending secret: the first one no longer confirms.
  Env e2;
  auto b1 = e2.auth->begin_totp_enrollment(kRoot, "bob", {});
  auto b2 = e2.auth->begin_totp_enrollment(kRoot, "bob", {});
  ASSERT_OK(b1);
  ASSERT_OK(b2);
  auto k1 = base32_decode(b1->secret_base32.view());
  auto k2 = base32_decode(b2->secret_base32.view());
  ASSERT_ERR(e2.auth->confirm_totp_enrollment(kRoot, "bob", code_now(e2, *k1)), Errc::kBadCode);
  ASSERT_OK(e2.auth->confirm_totp_enrollment(kRoot, "bob", code_now(e2, *k2)));
  // Default issuer without config: the host name.
  Config c;
  Env e3(c);
  auto b3 = e3.auth->begin_totp_enrollment(kRoot, "bob", {});
  ASSERT_OK(b3);
  assert_true(std::string(b3->otpauth_uri.view()).find("issuer=") != std::string::npos);
}

// --- Login ---

void test_login_totp_success(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto begun = e.auth->begin_authentication(
      kRoot, "alice", {{"service", "sshd"}, {"rhost", "10.0.0.5"}, {"tty", "ssh"}});
  ASSERT_OK(begun);
  assert_int_equal(begun->challenge.size(), 32);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "totp");
  assert_int_equal(e.audit_rows("auth.begin").size(), 1);

  const std::string code = code_now(e, key);
  auto r = e.auth->verify(kRoot, begun->challenge, code);
  ASSERT_OK(r);
  assert_string_equal(r->c_str(), "totp");
  auto success = e.audit_rows("auth.success");
  assert_int_equal(success.size(), 1);
  assert_string_equal(success[0].user.c_str(), "alice");
  assert_true(success[0].details_json.find("\"sshd\"") != std::string::npos);
  assert_true(success[0].details_json.find("10.0.0.5") != std::string::npos);
  assert_true(success[0].details_json.find("\"drift\":\"0\"") != std::string::npos);
  assert_true(success[0].details_json.find(code) == std::string::npos);
  assert_true(success[0].caller.find("uid=0") != std::string::npos);

  // The challenge is done.
  ASSERT_ERR(e.auth->verify(kRoot, begun->challenge, code), Errc::kNoSuchChallenge);
  ASSERT_OK(e.auth->end_authentication(kRoot, begun->challenge));
  ASSERT_ERR(e.auth->end_authentication(kRoot, begun->challenge), Errc::kNoSuchChallenge);
  assert_int_equal(e.auth->open_challenges(), 0);

  // A code from the next step (clock drift inside the window) is accepted and reported.
  auto ch = begin(e, "alice");
  auto r2 = e.auth->verify(kRoot, ch, code_at(key, e.clock.now_seconds() + 30));
  ASSERT_OK(r2);
  success = e.audit_rows("auth.success");
  assert_true(success.back().details_json.find("\"drift\":\"1\"") != std::string::npos);
}

void test_replay_refused(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  const std::string code = code_now(e, key);
  ASSERT_OK(e.auth->verify(kRoot, begin(e, "alice"), code));

  // Same step again, on a new challenge: refused, reason "replay".
  auto ch = begin(e, "alice");
  auto r = e.auth->verify(kRoot, ch, code);
  ASSERT_ERR(r, Errc::kBadCode);
  auto failures = e.audit_rows("auth.failure");
  assert_int_equal(failures.size(), 1);
  assert_string_equal(failures[0].reason.c_str(), "replay");

  // An older step inside the window: also a replay.
  const std::string older = code_at(key, e.clock.now_seconds() - 30);
  ASSERT_ERR(e.auth->verify(kRoot, ch, older), Errc::kBadCode);
  failures = e.audit_rows("auth.failure");
  assert_string_equal(failures.back().reason.c_str(), "replay");

  // A plainly wrong code is "bad-code".
  const std::string wrong = code == "123456" ? "654321" : "123456";
  ASSERT_ERR(e.auth->verify(kRoot, ch, wrong), Errc::kBadCode);
  failures = e.audit_rows("auth.failure");
  assert_string_equal(failures.back().reason.c_str(), "bad-code");

  // Two concurrent logins with one code: only the first wins.
  e.clock.advance_seconds(30);
  const std::string next = code_now(e, key);
  auto c1 = begin(e, "alice");
  auto c2 = begin(e, "alice", kRootOther);
  ASSERT_OK(e.auth->verify(kRoot, c1, next));
  ASSERT_ERR(e.auth->verify(kRootOther, c2, next), Errc::kBadCode);

  // Another host accepted this step first (the store's compare-and-set refuses): a replay.
  e.clock.advance_seconds(30);
  auto c3 = begin(e, "alice");
  e.store->refuse_advance = true;
  ASSERT_ERR(e.auth->verify(kRoot, c3, code_now(e, key)), Errc::kBadCode);
  e.store->refuse_advance = false;
  assert_string_equal(e.audit_rows("auth.failure").back().reason.c_str(), "replay");
}

void test_backup_code_once(void**) {
  Env e;
  auto codes = backup_codes_for(e, "alice");
  assert_int_equal(codes.size(), 10);
  auto begun = e.auth->begin_authentication(kRoot, "alice", {});
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "backup");
  auto r = e.auth->verify(kRoot, begun->challenge, codes[0]);
  ASSERT_OK(r);
  assert_string_equal(r->c_str(), "backup");
  assert_int_equal(e.audit_rows("backup.used").size(), 1);
  auto info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->backup_codes_left, 9);

  ASSERT_ERR(e.auth->verify(kRoot, begin(e, "alice"), codes[0]), Errc::kBadCode);
  // Typed the way people type: lower case, with a dash.
  std::string typed = codes[1].substr(0, 4) + "-" + codes[1].substr(4);
  std::transform(typed.begin(), typed.end(), typed.begin(), ::tolower);
  ASSERT_OK(e.auth->verify(kRoot, begin(e, "alice"), typed));

  // A new set replaces the old one.
  auto fresh = backup_codes_for(e, "alice");
  ASSERT_ERR(e.auth->verify(kRoot, begin(e, "alice"), codes[2]), Errc::kBadCode);
  ASSERT_OK(e.auth->verify(kRoot, begin(e, "alice"), fresh[0]));
  auto gen = e.audit_rows("backup.generate");
  assert_int_equal(gen.size(), 2);
  assert_true(gen[0].details_json.find("\"count\":\"10\"") != std::string::npos);
  for (const auto& row : e.audit_rows())
    for (const auto& c : codes)
      assert_true(row.details_json.find(c) == std::string::npos);
}

// --- Rate limits ---

void test_lockout_and_growth(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto ch = begin(e, "alice");
  for (int i = 1; i <= 4; ++i) {
    auto r = e.auth->verify(kRoot, ch, "000000");
    ASSERT_ERR(r, Errc::kBadCode);
    assert_true(r.error().message.starts_with("Invalid code"));
  }
  auto locked = e.auth->verify(kRoot, ch, "000000");
  ASSERT_ERR(locked, Errc::kRateLimited);
  assert_string_equal(locked.error().message.c_str(),
                      "Too many failed attempts; try again in 15 minutes");
  assert_int_equal(e.audit_rows("auth.lockout").size(), 1);
  assert_int_equal(e.events.events.size(), 1);
  assert_string_equal(e.events.events[0].kind.c_str(), "lockout");
  assert_string_equal(e.events.events[0].user.c_str(), "alice");
  auto info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->locked_until, e.clock.now_seconds() + 900);

  // While locked, even a good code is refused, and a new login too.
  ASSERT_ERR(e.auth->verify(kRoot, ch, code_now(e, key)), Errc::kRateLimited);
  auto b = e.auth->begin_authentication(kRoot, "alice", {});
  ASSERT_ERR(b, Errc::kRateLimited);
  assert_true(b.error().message.starts_with("Too many failed attempts; try again in"));

  // Once the lock ends: five more failures lock for twice as long.
  e.clock.advance_seconds(901);
  ch = begin(e, "alice");
  for (int i = 1; i <= 4; ++i)
    ASSERT_ERR(e.auth->verify(kRoot, ch, "000000"), Errc::kBadCode);
  locked = e.auth->verify(kRoot, ch, "000000");
  ASSERT_ERR(locked, Errc::kRateLimited);
  assert_string_equal(locked.error().message.c_str(),
                      "Too many failed attempts; try again in 30 minutes");
  info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->locked_until, e.clock.now_seconds() + 1800);

  // The doubling stops at MaxLockoutSeconds.
  Config c = test_config();
  c.max_failures = 1;
  c.lockout_seconds = 1000;
  c.max_lockout_seconds = 2500;
  Env e2(c);
  enroll_totp(e2, "bob");
  const int64_t expected[] = {1000, 2000, 2500, 2500};
  for (int64_t want : expected) {
    auto r = e2.auth->verify(kRoot, begin(e2, "bob"), "000000");
    ASSERT_ERR(r, Errc::kRateLimited);
    assert_int_equal(e2.auth->get_user(kRoot, "bob")->locked_until, e2.clock.now_seconds() + want);
    e2.clock.advance_seconds(want);
  }
}

// A lockout in force: every login is refused, the first refusal of each account is audited at
// once, and the repeats, counted per account, are one row each (docs/audit-events.md,
// "Coalesced denials"): a guesser's flood on locked accounts writes no row per attempt.
void test_locked_logins_are_coalesced_per_account(void**) {
  Config c = test_config();
  c.max_failures = 1;
  Env e(c);
  const auto key = enroll_totp(e, "alice");
  enroll_totp(e, "bob");
  ASSERT_ERR(e.auth->verify(kRoot, begin(e, "alice"), "000000"), Errc::kRateLimited);
  ASSERT_ERR(e.auth->verify(kRoot, begin(e, "bob"), "000000"), Errc::kRateLimited);
  for (int i = 0; i < 20; ++i) {
    auto r = e.auth->begin_authentication(kRoot, i % 2 ? "bob" : "alice", {{"service", "sshd"}});
    ASSERT_ERR(r, Errc::kRateLimited);
    assert_true(r.error().message.starts_with("Too many failed attempts; try again in"));
  }
  auto rows = e.audit_rows("auth.rate-limited");
  assert_int_equal(rows.size(), 2);
  assert_string_equal(rows[0].user.c_str(), "alice");
  assert_string_equal(rows[1].user.c_str(), "bob");
  assert_true(e.auth->counting_denials());
  ASSERT_OK(e.auth->flush_denials(true));
  rows = e.audit_rows("auth.rate-limited");
  assert_int_equal(rows.size(), 4);
  for (size_t i = 2; i < 4; ++i) {
    assert_string_equal(rows[i].reason.c_str(), "locked");
    assert_string_equal(rows[i].outcome.c_str(), "denied");
    assert_true(rows[i].details_json.find("\"count\":\"9\"") != std::string::npos);
    assert_true(rows[i].details_json.find("\"service\":\"sshd\"") != std::string::npos);
  }
  assert_string_equal(rows[2].user.c_str(), "alice");
  assert_string_equal(rows[3].user.c_str(), "bob");
  // The lockout holds, even for a good code.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kRateLimited);
  e.clock.advance_seconds(901);
  ASSERT_OK(e.auth->verify(kRoot, begin(e, "alice"), code_now(e, key)));
}

void test_success_resets_failures(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto ch = begin(e, "alice");
  for (int i = 0; i < 4; ++i)
    ASSERT_ERR(e.auth->verify(kRoot, ch, "000000"), Errc::kBadCode);
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, 4);
  ASSERT_OK(e.auth->verify(kRoot, ch, code_now(e, key)));
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, 0);
  // Four more failures do not lock: the count started again.
  e.clock.advance_seconds(30);
  ch = begin(e, "alice");
  for (int i = 0; i < 4; ++i)
    ASSERT_ERR(e.auth->verify(kRoot, ch, "000000"), Errc::kBadCode);
  ASSERT_OK(e.auth->verify(kRoot, ch, code_now(e, key)));
}

void test_unlock(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto ch = begin(e, "alice");
  for (int i = 0; i < 5; ++i)
    (void)e.auth->verify(kRoot, ch, "000000");
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kRateLimited);
  ASSERT_ERR(e.auth->unlock(kAliceC, "alice"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->unlock(kBobC, "alice"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->unlock(kCarolC, "dave"), Errc::kNoSuchUser);
  ASSERT_OK(e.auth->unlock(kCarolC, "alice"));
  assert_int_equal(e.audit_rows("admin.unlock").size(), 1);
  auto info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->locked_until, 0);
  assert_int_equal(info->failures, 0);
  ASSERT_OK(e.auth->verify(kRoot, begin(e, "alice"), code_now(e, key)));
}

void test_daily_cap(void**) {
  Config c = test_config();
  c.max_failures = 5;
  c.lockout_seconds = 60;
  c.max_failures_per_day = 7;
  Env e(c);
  // Start of a UTC day, plus one hour.
  e.clock.set_realtime_usec((1700000000LL / 86400 * 86400 + 3600) * 1000000);
  auto key = enroll_totp(e, "alice");
  auto ch = begin(e, "alice");
  for (int i = 0; i < 4; ++i)
    ASSERT_ERR(e.auth->verify(kRoot, ch, "000000"), Errc::kBadCode);
  ASSERT_ERR(e.auth->verify(kRoot, ch, "000000"), Errc::kRateLimited);  // 5 consecutive
  e.clock.advance_seconds(61);
  ch = begin(e, "alice");
  auto r = e.auth->verify(kRoot, ch, "000000");  // 6th of the day
  ASSERT_ERR(r, Errc::kBadCode);
  r = e.auth->verify(kRoot, ch, "000000");  // 7th: the daily cap
  ASSERT_ERR(r, Errc::kRateLimited);
  // Locked until the next UTC day: 22h58m59s away → 1379 minutes.
  assert_string_equal(r.error().message.c_str(),
                      "Too many failed attempts; try again in 1379 minutes");
  auto lockouts = e.audit_rows("auth.lockout");
  assert_string_equal(lockouts.back().reason.c_str(), "daily-limit");
  e.clock.advance_seconds(3600);
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kRateLimited);
  e.clock.advance_seconds(86400);
  ASSERT_OK(e.auth->verify(kRoot, begin(e, "alice"), code_now(e, key)));

  // Successes do not count against the daily cap.
  Env e2(c);
  auto key2 = enroll_totp(e2, "bob");
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(e2.auth->verify(kRoot, begin(e2, "bob"), code_now(e2, key2)));
    e2.clock.advance_seconds(30);
  }
}

// --- Challenges ---

void test_challenge_tied_to_caller(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto ch = begin(e, "alice");
  ASSERT_ERR(e.auth->verify(kRootOther, ch, code_now(e, key)), Errc::kNoSuchChallenge);
  ASSERT_ERR(e.auth->end_authentication(kRootOther, ch), Errc::kNoSuchChallenge);
  ASSERT_ERR(e.auth->verify(kRoot, "00000000000000000000000000000000", code_now(e, key)),
             Errc::kNoSuchChallenge);
  // Nothing was counted for those.
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, 0);
  // The same process on a new connection (pam_mfa.so closes its own while the person types).
  const Caller reconnected{kRoot.uid, kRoot.pid, ":1.99"};
  ASSERT_OK(e.auth->verify(reconnected, ch, code_now(e, key)));
  ASSERT_OK(e.auth->end_authentication(kRoot, ch));
  assert_int_equal(e.auth->open_challenges(), 0);
}

// A login abandoned at its prompt (its process gone, its connection long closed) keeps its
// challenge until the expiry, or until the user's cap needs the room.
void test_challenge_of_an_exited_process(void**) {
  Config c = test_config();
  c.max_challenges_per_user = 2;
  Env e(c);
  backup_codes_for(e, "alice");
  pid_t child = fork();
  if (child == 0)
    _exit(0);
  assert_true(child > 0);
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  const Caller gone{0, child, ":1.30"};
  begin(e, "alice", gone);
  begin(e, "alice", gone);
  assert_int_equal(e.auth->open_challenges(), 2);
  // The cap is reached: the exited process's challenges make room.
  auto live = begin(e, "alice");
  assert_int_equal(e.auth->open_challenges(), 1);
  begin(e, "alice", kRootOther);
  // Both live: the cap holds.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kLimitExceeded);
  ASSERT_OK(e.auth->end_authentication(kRoot, live));
}

void test_challenge_expiry(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  const uint64_t t0 = e.clock.monotonic_usec();
  auto ch = begin(e, "alice");
  assert_int_equal(e.auth->expire_challenges(), t0 + 300ULL * 1000000);
  e.clock.advance_seconds(299);
  assert_int_equal(e.auth->open_challenges(), 1);
  e.clock.advance_seconds(1);
  auto r = e.auth->verify(kRoot, ch, code_now(e, key));
  ASSERT_ERR(r, Errc::kChallengeExpired);
  ASSERT_ERR(e.auth->verify(kRoot, ch, code_now(e, key)), Errc::kNoSuchChallenge);
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, 0);

  // The housekeeping timer drops them too.
  begin(e, "alice");
  e.clock.advance_seconds(300);
  assert_int_equal(e.auth->expire_challenges(), 0);
  assert_int_equal(e.auth->open_challenges(), 0);
}

void test_challenge_caps(void**) {
  Config c = test_config();
  c.max_challenges_per_user = 2;
  c.max_challenges_per_caller = 3;
  Env e(c);
  backup_codes_for(e, "alice");
  backup_codes_for(e, "bob");
  backup_codes_for(e, "carol");
  auto a1 = begin(e, "alice");
  begin(e, "alice", kRootOther);
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kLimitExceeded);
  ASSERT_OK(e.auth->end_authentication(kRoot, a1));
  begin(e, "alice");  // a slot freed up
  // Per caller: kRoot holds alice + bob + carol.
  begin(e, "bob");
  begin(e, "carol");
  auto r = e.auth->begin_authentication(kRoot, "bob", {});
  ASSERT_ERR(r, Errc::kLimitExceeded);
  ASSERT_OK(e.auth->begin_authentication(kRootOther, "bob", {}));
}

// --- Step-up ---

void test_step_up(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto r = e.auth->generate_backup_codes(kAliceC, "alice", "");
  ASSERT_ERR(r, Errc::kStepUpRequired);
  ASSERT_ERR(e.auth->generate_backup_codes(kAliceC, "alice", "000000"), Errc::kBadCode);
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, 1);
  const std::string code = code_now(e, key);
  auto codes = e.auth->generate_backup_codes(kAliceC, "alice", code);
  ASSERT_OK(codes);
  assert_int_equal(codes->size(), 10);
  // The step-up code counted against the watermark: no replay, not even for a login.
  ASSERT_ERR(e.auth->generate_backup_codes(kAliceC, "alice", code), Errc::kBadCode);
  ASSERT_ERR(e.auth->verify(kRoot, begin(e, "alice"), code), Errc::kBadCode);
  // A backup code is a current code too.
  ASSERT_OK(e.auth->disable_method(kAliceC, "alice", "totp", std::string((*codes)[0].view())));
  ASSERT_ERR(e.auth->disable_method(kAliceC, "alice", "totp", ""), Errc::kNotEnrolled);

  // Admins and root acting on someone else skip it; an admin on their own account does not.
  ASSERT_OK(e.auth->generate_backup_codes(kCarolC, "alice", ""));
  ASSERT_OK(e.auth->generate_backup_codes(kRoot, "alice", ""));
  enroll_totp(e, "carol");
  ASSERT_ERR(e.auth->generate_backup_codes(kCarolC, "carol", ""), Errc::kStepUpRequired);
  // Root on its own account skips it.
  enroll_totp(e, "root");
  ASSERT_OK(e.auth->generate_backup_codes(kRoot, "root", ""));

  // A locked user gets RateLimited, also with a good code.
  Env e2;
  auto key2 = enroll_totp(e2, "bob");
  for (int i = 0; i < 4; ++i)
    ASSERT_ERR(e2.auth->disable_method(kBobC, "bob", "totp", "000000"), Errc::kBadCode);
  ASSERT_ERR(e2.auth->disable_method(kBobC, "bob", "totp", "000000"), Errc::kRateLimited);
  ASSERT_ERR(e2.auth->disable_method(kBobC, "bob", "totp", code_now(e2, key2)), Errc::kRateLimited);
  assert_int_equal(e2.auth->get_user(kRoot, "bob")->methods.size(), 1);

  // A first enrollment needs none; a second factor does.
  Env e3;
  auto k3 = e3.auth->begin_totp_enrollment(kBobC, "bob", {});
  ASSERT_OK(k3);
  ASSERT_OK(e3.auth->generate_backup_codes(kBobC, "bob", ""));  // TOTP only pending so far
  ASSERT_ERR(e3.auth->generate_backup_codes(kBobC, "bob", ""), Errc::kStepUpRequired);
}

void test_disable_and_reset(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto codes = backup_codes_for(e, "alice");
  ASSERT_ERR(e.auth->disable_method(kAliceC, "alice", "sms", ""), Errc::kNotEnrolled);
  ASSERT_ERR(e.auth->disable_method(kAliceC, "alice", "fido", ""), Errc::kInvalidArgument);
  ASSERT_OK(e.auth->disable_method(kAliceC, "alice", "totp", code_now(e, key)));
  auto begun = e.auth->begin_authentication(kRoot, "alice", {});
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "backup");
  auto dis = e.audit_rows("enroll.disable");
  assert_int_equal(dis.size(), 1);
  assert_true(dis[0].details_json.find("\"totp\"") != std::string::npos);

  // Disabling drops a pending enrollment as well.
  ASSERT_OK(e.auth->begin_totp_enrollment(kRoot, "alice", {}));
  ASSERT_OK(e.auth->disable_method(kRoot, "alice", "totp", ""));
  assert_true(e.auth->get_user(kRoot, "alice")->pending.empty());

  // Reset: everything goes.
  ASSERT_ERR(e.auth->reset_user(kAliceC, "alice"), Errc::kNotAllowed);
  ASSERT_OK(e.auth->reset_user(kCarolC, "alice"));
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kNotEnrolled);
  assert_int_equal(e.auth->get_user(kRoot, "alice")->backup_codes_left, 0);
  assert_int_equal(e.audit_rows("admin.reset").size(), 1);
}

// An account deleted from NSS keeps its state until an admin clears it: reset and unlock still
// work on it, while a name that never had state stays unknown.
void test_admin_clears_state_of_deleted_account(void**) {
  Env e;
  enroll_totp(e, "bob");
  auto ch = begin(e, "bob");
  for (int i = 0; i < 5; ++i)
    (void)e.auth->verify(kRoot, ch, "000000");
  e.users.deleted.insert("bob");
  ASSERT_ERR(e.auth->get_user(kCarolC, "bob"), Errc::kNoSuchUser);
  // State is the account's (its uid): ListUsers shows it as "#<uid>", and admins reach it so.
  const std::string shown = "#" + std::to_string(kBob);
  auto users = e.auth->list_users(kCarolC);
  assert_true(users.ok());
  assert_int_equal(users->size(), 1);
  assert_string_equal((*users)[0].user.c_str(), shown.c_str());
  ASSERT_ERR(e.auth->unlock(kCarolC, "bob"), Errc::kNoSuchUser);
  ASSERT_OK(e.auth->unlock(kCarolC, shown));
  ASSERT_OK(e.auth->reset_user(kCarolC, shown));
  ASSERT_OK(e.store->flush());
  ASSERT_ERR(e.auth->reset_user(kCarolC, shown), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->reset_user(kCarolC, "bob"), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->unlock(kCarolC, "nobody-ever"), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->reset_user(kAliceC, "bob"), Errc::kNotAllowed);
}

// --- Accounts, not names (issue 17) ---

// A second name of an account (two passwd entries with one uid) is the same account: its login is
// asked for the factor enrolled under the other name, never taken for an unenrolled user.
void test_alias_is_the_same_account(void**) {
  Env e;
  e.users.aliases["alice2"] = kAlice;
  const SecureBytes key = enroll_totp(e, "alice");
  auto begun = e.auth->begin_authentication(kRoot, "alice2", {{"service", "sshd"}});
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "totp");
  ASSERT_OK(e.auth->verify(kRoot, begun->challenge, code_now(e, key)));
  // The audit trail names the account, its uid, and the name the login used.
  const auto rows = e.audit_rows("auth.success");
  assert_int_equal(rows.size(), 1);
  assert_string_equal(rows[0].user.c_str(), "alice");
  assert_non_null(strstr(rows[0].details_json.c_str(), "\"uid\":\"1000\""));
  assert_non_null(strstr(rows[0].details_json.c_str(), "\"login_name\":\"alice2\""));
  // Management through either name reaches the one account.
  auto info = e.auth->get_user(kRoot, "alice2");
  ASSERT_OK(info);
  assert_string_equal(info->user.c_str(), "alice");
  assert_int_equal(info->methods.size(), 1);
  ASSERT_ERR(e.auth->begin_totp_enrollment(kRoot, "alice2", {}), Errc::kAlreadyEnrolled);
  auto users = e.auth->list_users(kRoot);
  ASSERT_OK(users);
  assert_int_equal(users->size(), 1);
}

// Records of an older mfad (keyed by name, sealed for the name, backup codes hashed with it) still
// open once the migration moved them to the account's key.
void test_records_of_an_older_version_still_work(void**) {
  Env e;
  SecureBytes seed(20);
  for (size_t i = 0; i < seed.size(); ++i)
    seed.data()[i] = static_cast<uint8_t>(i + 3);
  auto sealed = e.sealer->seal(seed.span(), "alice", "totp");
  assert_true(sealed.ok());
  FactorRecord r;
  r.method = Method::kTotp;
  r.sealed = std::move(sealed).value();
  r.params = "SHA1:6:30";
  const std::string account = account_key(kAlice);
  ASSERT_OK(e.sqlite->put_factor(account, r));
  // A backup code as an older mfad hashed it: HMAC(key, name || 0 || code).
  const std::string code = "acde-fghj";
  auto canonical = normalize_backup_code(code);
  assert_true(canonical.has_value());
  std::string data = "alice";
  data.push_back('\0');
  data.append(canonical->view());
  auto mac =
      hmac_sha256(e.hash_key.span(), {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
  assert_true(mac.ok());
  CodeHash h{};
  memcpy(h.data(), mac->data(), h.size());
  ASSERT_OK(e.sqlite->replace_backup_codes(account, {h}));
  ASSERT_OK(e.sqlite->flush());

  auto ch = begin(e, "alice");
  ASSERT_OK(e.auth->verify(kRoot, ch, code_now(e, seed)));
  ch = begin(e, "alice");
  auto used = e.auth->verify(kRoot, ch, code);
  ASSERT_OK(used);
  assert_string_equal(used->c_str(), "backup");
}

// An alias that enrolled on its own under an older mfad: the migration leaves its records under
// that spelling (sealed for it). Its login is refused until an admin resets it, never answered
// NotEnrolled, which nullok would let in without a code.
void test_alias_with_records_of_its_own_is_not_unenrolled(void**) {
  Env e;
  e.users.aliases["alice2"] = kAlice;
  auto sealed = e.sealer->seal(SecureBytes(20).span(), "alice2", "totp");
  assert_true(sealed.ok());
  FactorRecord r;
  r.method = Method::kTotp;
  r.sealed = std::move(sealed).value();
  r.params = "SHA1:6:30";
  ASSERT_OK(e.sqlite->put_factor("alice2", r));
  ASSERT_OK(e.sqlite->flush());
  auto begun = e.auth->begin_authentication(kRoot, "alice2", {{"service", "sshd"}});
  ASSERT_ERR(begun, Errc::kNotAllowed);
  assert_non_null(strstr(begun.error().message.c_str(), "mfactl reset alice2"));
  // The account's own name has no record of its own: not enrolled, as before.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {{"service", "sshd"}}),
             Errc::kNotEnrolled);
}

// nullok must not let an enrolled user in: enrolled, but for none of the service's methods, is
// its own answer (issue 17).
void test_methods_not_accepted_is_not_unenrolled(void**) {
  Env e;
  enroll_totp(e, "alice");
  auto r = e.auth->begin_authentication(kRoot, "alice", {{"methods", "backup,sms"}});
  ASSERT_ERR(r, Errc::kMethodNotAccepted);
  assert_non_null(strstr(r.error().message.c_str(), "sms, backup"));
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", {{"methods", "totp"}}), Errc::kNotEnrolled);
  // Backup codes alone are a factor too.
  backup_codes_for(e, "bob");
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", {{"methods", "totp"}}),
             Errc::kMethodNotAccepted);
  const auto rows = e.audit_rows("auth.not-enrolled");
  assert_int_equal(rows.size(), 3);
  assert_string_equal(rows[0].reason.c_str(), "method-not-accepted");
  assert_string_equal(rows[1].reason.c_str(), "not-enrolled");
}

// --- Authorization ---

void test_authorization_tiers(void**) {
  Env e;
  enroll_totp(e, "alice");
  // Self-service or admin.
  ASSERT_OK(e.auth->get_user(kRoot, "alice"));
  ASSERT_OK(e.auth->get_user(kCarolC, "alice"));
  ASSERT_OK(e.auth->get_user(kAliceC, "alice"));
  auto denied = e.auth->get_user(kBobC, "alice");
  ASSERT_ERR(denied, Errc::kNotAllowed);
  assert_int_equal(e.audit_rows("access.denied").size(), 1);
  ASSERT_ERR(e.auth->begin_totp_enrollment(kBobC, "alice", {}), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->confirm_totp_enrollment(kBobC, "alice", "123456"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->generate_backup_codes(kBobC, "alice", ""), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->disable_method(kBobC, "alice", "totp", ""), Errc::kNotAllowed);
  // Admin only.
  ASSERT_ERR(e.auth->list_users(kAliceC), Errc::kNotAllowed);
  auto users = e.auth->list_users(kCarolC);
  ASSERT_OK(users);
  assert_int_equal(users->size(), 1);
  assert_string_equal((*users)[0].user.c_str(), "alice");
  ASSERT_OK(e.auth->list_users(kRoot));
  ASSERT_ERR(e.auth->list_audit_events(kAliceC, {}), Errc::kNotAllowed);
  ASSERT_OK(e.auth->list_audit_events(kCarolC, {}));
  ASSERT_ERR(e.auth->verify_audit_trail(kBobC), Errc::kNotAllowed);
  auto v = e.auth->verify_audit_trail(kCarolC);
  ASSERT_OK(v);
  assert_true(v->intact);
  assert_true(e.auth->is_admin(kRoot));
  assert_true(e.auth->is_admin(kCarolC));
  assert_false(e.auth->is_admin(kAliceC));
  // Root only: the PAM side.
  ASSERT_ERR(e.auth->begin_authentication(kCarolC, "alice", {}), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->begin_authentication(kAliceC, "alice", {}), Errc::kNotAllowed);
  auto ch = begin(e, "alice");
  ASSERT_ERR(e.auth->verify(kCarolC, ch, "123456"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->end_authentication(kCarolC, ch), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->send_sms_code(kAliceC, ch), Errc::kNotAllowed);
}

// An admin authority the bus layer asks (polkit): test double with a settable answer.
class ScriptedAuthority final : public AdminAuthority {
 public:
  explicit ScriptedAuthority(Answer answer) : answer_(answer) {}
  Answer answer() const override { return answer_; }
  const char* name() const override { return "polkit"; }
  void wanted() override { ++wanted_; }
  Answer answer_;
  int wanted_ = 0;
};

// polkit (the bus layer asks it): a refusal for want of the admin tier while the authority was
// not asked is not final, so not audited, and the authority learns it is wanted; the answer
// decides, and only a no is audited.
void test_admin_tier_through_polkit(void**) {
  Env e;
  enroll_totp(e, "alice");
  auto authority = std::make_shared<ScriptedAuthority>(AdminAuthority::Answer::kNotAsked);
  Caller bob = kBobC;
  bob.admin_authority = authority;
  ASSERT_ERR(e.auth->get_user(bob, "alice"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->list_users(bob), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->unlock(bob, "alice"), Errc::kNotAllowed);
  assert_int_equal(authority->wanted_, 3);
  assert_int_equal(e.audit_rows("access.denied").size(), 0);
  // Own account, unknown users, the PAM side: no question to ask.
  ASSERT_OK(e.auth->get_user(bob, "bob"));
  ASSERT_ERR(e.auth->get_user(bob, "nobody-ever"), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->begin_authentication(bob, "alice", {}), Errc::kNotAllowed);  // audited
  assert_int_equal(e.audit_rows("access.denied").size(), 1);
  assert_int_equal(authority->wanted_, 3);
  // Root and the admin group never wait for polkit.
  Caller carol = kCarolC;
  carol.admin_authority = authority;
  ASSERT_OK(e.auth->list_users(carol));
  assert_int_equal(authority->wanted_, 3);
  authority->answer_ = AdminAuthority::Answer::kNo;
  ASSERT_ERR(e.auth->list_users(bob), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->get_user(bob, "alice"), Errc::kNotAllowed);
  assert_int_equal(e.audit_rows("access.denied").size(), 3);
  authority->answer_ = AdminAuthority::Answer::kYes;
  assert_true(e.auth->is_admin(bob));
  ASSERT_OK(e.auth->list_users(bob));
  ASSERT_OK(e.auth->unlock(bob, "alice"));
  auto unlocks = e.audit_rows("admin.unlock");
  assert_int_equal(unlocks.size(), 1);
  assert_string_equal(unlocks[0].caller.c_str(), "uid=1001 pid=201 :1.21 via polkit");
  assert_int_equal(e.audit_rows("access.denied").size(), 3);
  assert_int_equal(authority->wanted_, 3);
}

// A caller refused in a loop grows the audit trail by two rows per window, not one per call
// (docs/audit-events.md, "Coalesced denials"): the first refusal at once, the count of the
// others when the window ends; another action, another caller, each limited call are their own.
void test_repeated_denials_are_coalesced(void**) {
  Env e;
  enroll_totp(e, "alice");
  for (int i = 0; i < 50; ++i)
    ASSERT_ERR(e.auth->get_user(kBobC, "alice"), Errc::kNotAllowed);
  auto rows = e.audit_rows("access.denied");
  assert_int_equal(rows.size(), 1);
  assert_string_equal(rows[0].reason.c_str(), "not-allowed");
  assert_string_equal(rows[0].user.c_str(), "alice");
  ASSERT_ERR(e.auth->list_users(kBobC), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->get_user(kAliceC, "bob"), Errc::kNotAllowed);
  ASSERT_OK(e.auth->call_limited(kBobC, "GetUser"));
  ASSERT_OK(e.auth->call_limited(kBobC, "GetUser"));
  assert_int_equal(e.audit_rows("access.denied").size(), 4);
  // Nothing is written before the window ends.
  ASSERT_OK(e.auth->flush_denials(false));
  assert_int_equal(e.audit_rows("access.denied").size(), 4);
  e.clock.advance_seconds(61);
  ASSERT_OK(e.auth->flush_denials(false));
  rows = e.audit_rows("access.denied");
  assert_int_equal(rows.size(), 6);
  std::set<std::string> counted{rows[4].details_json, rows[5].details_json};
  assert_true(counted.count(R"({"action":"GetUser","count":"49","window_seconds":"60"})") == 1);
  assert_true(counted.count(R"({"action":"GetUser","count":"1","window_seconds":"60"})") == 1);
  // A new window starts with a row of its own; shutdown writes what was counted so far.
  ASSERT_ERR(e.auth->get_user(kBobC, "alice"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->get_user(kBobC, "carol"), Errc::kNotAllowed);
  assert_int_equal(e.audit_rows("access.denied").size(), 7);
  ASSERT_OK(e.auth->flush_denials(true));
  rows = e.audit_rows("access.denied");
  assert_int_equal(rows.size(), 8);
  assert_string_equal(rows[7].user.c_str(), "");  // the repeats named several users
  assert_string_equal(rows[7].details_json.c_str(),
                      R"({"action":"GetUser","count":"1","window_seconds":"60"})");
  // A step-up asked for again and again: the same, with the first one's purpose.
  for (int i = 0; i < 3; ++i)
    ASSERT_ERR(e.auth->generate_backup_codes(kAliceC, "alice", ""), Errc::kStepUpRequired);
  assert_int_equal(e.audit_rows("auth.failure").size(), 1);
  ASSERT_OK(e.auth->flush_denials(true));
  rows = e.audit_rows("auth.failure");
  assert_int_equal(rows.size(), 2);
  assert_string_equal(rows[1].reason.c_str(), "step-up-required");
  assert_string_equal(
      rows[1].details_json.c_str(),
      R"({"action":"backup-codes","count":"2","purpose":"step-up","uid":"1000","window_seconds":"60"})");
  auto verified = e.auth->verify_audit_trail(kRoot);
  ASSERT_OK(verified);
  assert_true(verified->intact);
}

// --- Argument checks ---

void test_bad_names_and_arguments(void**) {
  Env e;
  enroll_totp(e, "alice");
  const std::string bad_names[] = {
      "",          std::string(257, 'a'), "a/b",           "-alice",
      "al\x01ice", "al\xffice",           "al\xc2\x85ice", std::string("al\0ice", 6)};
  for (const auto& n : bad_names) {
    ASSERT_ERR(e.auth->begin_authentication(kRoot, n, {}), Errc::kInvalidArgument);
    ASSERT_ERR(e.auth->get_user(kRoot, n), Errc::kInvalidArgument);
    ASSERT_ERR(e.auth->reset_user(kRoot, n), Errc::kInvalidArgument);
  }
  // A name of 256 bytes is valid (and unknown to NSS).
  ASSERT_ERR(e.auth->begin_authentication(kRoot, std::string(256, 'a'), {}), Errc::kNoSuchUser);
  // Unknown to NSS: refused, for logins as for management (issue 17: state is the account's).
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "dave", {}), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->get_user(kRoot, "dave"), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->begin_totp_enrollment(kRoot, "dave", {}), Errc::kNoSuchUser);
  ASSERT_ERR(e.auth->reset_user(kRoot, "dave"), Errc::kNoSuchUser);

  // Context.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {{"colour", "red"}}),
             Errc::kInvalidArgument);
  StringMap many;
  for (int i = 0; i < 17; ++i)
    many["k" + std::to_string(i)] = "v";
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", many), Errc::kInvalidArgument);
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {{"rhost", std::string(1025, 'h')}}),
             Errc::kInvalidArgument);
  ASSERT_OK(e.auth->begin_authentication(kRoot, "alice", {{"rhost", std::string(1024, 'h')}}));
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {{"tty", "pts/1\n"}}),
             Errc::kInvalidArgument);
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {{"methods", "totp,fido"}}),
             Errc::kInvalidArgument);

  // Codes: too long is refused unread (not counted).
  auto ch = begin(e, "alice");
  ASSERT_ERR(e.auth->verify(kRoot, ch, std::string(dbus::kMaxCodeLength + 1, '1')),
             Errc::kInvalidArgument);
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, 0);
  ASSERT_ERR(e.auth->confirm_totp_enrollment(kRoot, "alice", std::string(65, '1')),
             Errc::kInvalidArgument);

  // No provider configured: no text.
  auto sms = e.auth->send_sms_code(kRoot, ch);
  ASSERT_ERR(sms, Errc::kSmsUnavailable);
  ASSERT_ERR(e.auth->send_sms_code(kRoot, "nope"), Errc::kNoSuchChallenge);

  // Audit queries.
  AuditFilter f;
  f.limit = 10001;
  ASSERT_ERR(e.auth->list_audit_events(kRoot, f), Errc::kInvalidArgument);
  f.limit = 10000;
  auto rows = e.auth->list_audit_events(kRoot, f);
  ASSERT_OK(rows);
  assert_true(!rows->empty());
  f.user = "a/b";
  ASSERT_ERR(e.auth->list_audit_events(kRoot, f), Errc::kInvalidArgument);
  f.user = "alice";
  f.limit = 2;
  rows = e.auth->list_audit_events(kRoot, f);
  ASSERT_OK(rows);
  assert_int_equal(rows->size(), 2);
}

void test_methods_filter(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto codes = backup_codes_for(e, "alice");
  auto all = e.auth->begin_authentication(kRoot, "alice", {});
  ASSERT_OK(all);
  assert_int_equal(all->methods.size(), 2);
  assert_string_equal(all->methods[0].c_str(), "totp");
  assert_string_equal(all->methods[1].c_str(), "backup");

  auto only_backup = e.auth->begin_authentication(kRoot, "alice", {{"methods", "backup"}});
  ASSERT_OK(only_backup);
  assert_int_equal(only_backup->methods.size(), 1);
  assert_string_equal(only_backup->methods[0].c_str(), "backup");
  ASSERT_ERR(e.auth->verify(kRoot, only_backup->challenge, code_now(e, key)), Errc::kBadCode);
  auto r = e.auth->verify(kRoot, only_backup->challenge, codes[0]);
  ASSERT_OK(r);
  assert_string_equal(r->c_str(), "backup");

  auto only_totp = e.auth->begin_authentication(kRoot, "alice", {{"methods", " totp , sms "}});
  ASSERT_OK(only_totp);
  assert_int_equal(only_totp->methods.size(), 1);
  ASSERT_ERR(e.auth->verify(kRoot, only_totp->challenge, codes[1]), Errc::kBadCode);

  // Enrolled, only not for this service: never "not enrolled", which nullok would let in.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {{"methods", "sms"}}),
             Errc::kMethodNotAccepted);
  assert_true(e.audit_rows("auth.not-enrolled").size() >= 1);
}

// --- Storage failures: errors, never success ---

void test_storage_errors(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto codes = backup_codes_for(e, "alice");

  // Writes fail: a good code is not a success.
  auto ch = begin(e, "alice");
  e.store->fail_writes = true;
  ASSERT_ERR(e.auth->verify(kRoot, ch, code_now(e, key)), Errc::kStorage);
  ASSERT_ERR(e.auth->verify(kRoot, ch, codes[0]), Errc::kStorage);
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kStorage);
  ASSERT_ERR(e.auth->generate_backup_codes(kRoot, "alice", ""), Errc::kStorage);
  ASSERT_ERR(e.auth->unlock(kRoot, "alice"), Errc::kStorage);
  e.store->fail_writes = false;

  // Reads fail.
  e.store->fail_reads = true;
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kStorage);
  ASSERT_ERR(e.auth->verify(kRoot, ch, code_now(e, key)), Errc::kStorage);
  ASSERT_ERR(e.auth->get_user(kRoot, "alice"), Errc::kStorage);
  ASSERT_ERR(e.auth->list_users(kRoot), Errc::kStorage);
  e.store->fail_reads = false;

  // The audit trail fails: the decision fails with it (fail closed).
  e.store->fail_audit = true;
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "alice", {}), Errc::kStorage);
  ASSERT_ERR(e.auth->verify(kRoot, ch, code_now(e, key)), Errc::kStorage);
  ASSERT_ERR(e.auth->get_user(kBobC, "alice"), Errc::kStorage);  // even a denial
  e.store->fail_audit = false;

  // The attempt is counted before the code is checked: a failure while checking leaves it
  // counted.
  auto ch2 = begin(e, "alice");
  const int before = static_cast<int>(e.auth->get_user(kRoot, "alice")->failures);
  e.store->fail_consume = true;
  ASSERT_ERR(e.auth->verify(kRoot, ch2, codes[1]), Errc::kStorage);
  e.store->fail_consume = false;
  assert_int_equal(e.auth->get_user(kRoot, "alice")->failures, before + 1);
  // Storage healthy again: the same code still works (it was never consumed).
  ASSERT_OK(e.auth->verify(kRoot, ch2, codes[1]));

  // A sealed seed that does not open (another master key) is an error, not a pass.
  std::vector<uint8_t> other(32, 0x55);
  auto other_sealer = Sealer::create(other);
  assert_true(other_sealer.ok());
  Authenticator wrong_key(AuthenticatorDeps{e.config, *e.store, *e.audit, *other_sealer, e.hash_key,
                                            e.clock, e.users, nullptr});
  e.clock.advance_seconds(30);
  auto b = wrong_key.begin_authentication(kRoot, "alice", {});
  ASSERT_OK(b);
  ASSERT_ERR(wrong_key.verify(kRoot, b->challenge, code_now(e, key)), Errc::kStorage);
}

void test_get_user_contents(void**) {
  Env e;
  auto info = e.auth->get_user(kAliceC, "alice");
  ASSERT_OK(info);
  assert_string_equal(info->user.c_str(), "alice");
  assert_true(info->methods.empty());
  assert_false(info->totp.has_value());
  enroll_totp(e, "alice");
  backup_codes_for(e, "alice");
  info = e.auth->get_user(kAliceC, "alice");
  assert_int_equal(info->methods.size(), 2);
  assert_int_equal(info->backup_codes_left, 10);
  assert_int_equal(info->totp->period, 30);
  assert_string_equal(info->masked_phone.c_str(), "");
  auto chain = e.sqlite->verify_audit_chain();
  assert_true(chain.ok() && chain->intact);
}

}  // namespace

// --- SMS (the sender is the bus layer's; here its answer is given by hand) ---

Config sms_config() {
  Config c = test_config();
  c.sms_provider = SmsProvider::kTwilio;
  return c;
}

std::string code_of(const SmsMessage& msg) {
  const std::string body(msg.body.view());
  const auto colon = body.find(": ");
  assert_true(colon != std::string::npos);
  return body.substr(colon + 2, 6);
}

SmsDelivery accepted() {
  SmsDelivery d;
  d.status = SmsDeliveryStatus::kAccepted;
  d.reason = AuditReason::kAccepted;
  d.tries = 1;
  return d;
}

void enroll_sms(Env& e, const std::string& user = "alice") {
  auto msg = e.auth->begin_sms_enrollment(kRoot, user, "+15557654321", "");
  ASSERT_OK(msg);
  assert_string_equal(msg->masked.c_str(), "+1\u2022\u2022\u2022\u2022\u2022\u20224321");
  assert_null(strstr(msg->body.c_str(), "5557654321"));
  ASSERT_OK(e.auth->sms_sent(*msg, accepted()));
  ASSERT_OK(e.auth->confirm_sms_enrollment(kRoot, user, code_of(*msg)));
}

static void test_sms_phone_rules(void** /*state*/) {
  assert_true(validate_e164("+15557654321").ok());
  assert_true(validate_e164("+4930123456").ok());
  for (const char* bad : {"15557654321", "+1555765", "+1234567890123456", "+0155576543",
                          "+1 5557654321", "+1555765432a", ""}) {
    assert_false(validate_e164(bad).ok());
  }
  assert_string_equal(mask_phone("+4930123456").c_str(), "+49\u2022\u2022\u2022\u20223456");
  assert_string_equal(sms_code_text("host1", "012345", 600).c_str(),
                      "mfad code for host1: 012345 (valid 10 minutes)");
  assert_string_equal(sms_code_text("h", "012345", 90).c_str(),
                      "mfad code for h: 012345 (valid 90 seconds)");
}

static void test_sms_allowed_prefixes(void** /*state*/) {
  std::vector<std::string> prefixes;
  assert_false(parse_phone_prefixes("", &prefixes).has_value());
  assert_true(prefixes.empty());
  assert_true(phone_allowed("+15557654321", prefixes));
  assert_false(parse_phone_prefixes(" +1\t+44  +49 ", &prefixes).has_value());
  assert_int_equal(prefixes.size(), 3);
  assert_true(phone_allowed("+15557654321", prefixes));
  assert_true(phone_allowed("+4930123456", prefixes));
  assert_false(phone_allowed("+33612345678", prefixes));
  assert_false(phone_allowed("+4", prefixes));
  for (const char* bad : {"44", "+", "+0", "+1 x", "+1234567890123456", "++1"}) {
    std::vector<std::string> kept{"+1"};
    assert_true(parse_phone_prefixes(bad, &kept).has_value());
    assert_int_equal(kept.size(), 1);  // untouched on failure
  }
}

static void test_sms_login_and_expiry(void** /*state*/) {
  Config c = sms_config();
  c.sms_code_lifetime_seconds = 60;
  Env e(c);
  enroll_sms(e);
  auto info = e.auth->get_user(kRoot, "alice");
  assert_string_equal(info->masked_phone.c_str(), "+1\u2022\u2022\u2022\u2022\u2022\u20224321");

  auto begun = e.auth->begin_authentication(kRoot, "alice", {{"service", "sshd"}});
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "sms");
  // No SMS code before SendSmsCode.
  ASSERT_ERR(e.auth->verify(kRoot, begun->challenge, "123456"), Errc::kBadCode);
  auto msg = e.auth->send_sms_code(kRoot, begun->challenge);
  ASSERT_OK(msg);
  ASSERT_OK(e.auth->sms_sent(*msg, accepted()));
  auto method = e.auth->verify(kRoot, begun->challenge, code_of(*msg));
  ASSERT_OK(method);
  assert_string_equal(method->c_str(), "sms");

  // A code past its lifetime never matches (the injected clock moves 61 s; the challenge lives):
  // the person is told it expired, and the failure is audited as `expired` (issue 18).
  auto again = e.auth->begin_authentication(kRoot, "alice", {{"service", "sshd"}});
  auto msg2 = e.auth->send_sms_code(kRoot, again->challenge);
  ASSERT_OK(msg2);
  ASSERT_OK(e.auth->sms_sent(*msg2, accepted()));
  e.clock.advance_seconds(61);
  auto late = e.auth->verify(kRoot, again->challenge, code_of(*msg2));
  ASSERT_ERR(late, Errc::kCodeExpired);
  assert_non_null(strstr(late.error().message.c_str(), "type sms for a new one"));
  {
    const auto rows = e.audit_rows();
    assert_string_equal(rows.back().kind.c_str(), "auth.failure");
    assert_string_equal(rows.back().reason.c_str(), "expired");
  }
  // Spent by being told: the same code again is a plain wrong code.
  ASSERT_ERR(e.auth->verify(kRoot, again->challenge, code_of(*msg2)), Errc::kBadCode);

  // Nothing in the database holds the code or the number in clear.
  const std::string code = code_of(*msg2);
  for (const auto& row : e.audit_rows()) {
    assert_null(strstr(row.details_json.c_str(), "5557654321"));
    assert_null(strstr(row.details_json.c_str(), code.c_str()));
  }
}

static void test_sms_attempts_limits_and_failures(void** /*state*/) {
  Config c = sms_config();
  c.max_failures = 10;
  c.sms_max_sends_per_window = 4;
  Env e(c);
  enroll_sms(e);  // send 1 of 4
  auto b = e.auth->begin_authentication(kRoot, "alice", {});
  auto msg = e.auth->send_sms_code(kRoot, b->challenge);  // 2
  ASSERT_OK(msg);
  ASSERT_OK(e.auth->sms_sent(*msg, accepted()));
  const std::string code = code_of(*msg);
  for (int i = 1; i <= 3; ++i) {
    const std::string wrong = std::to_string(100000 + (std::stoi(code) + i) % 900000);
    ASSERT_ERR(e.auth->verify(kRoot, b->challenge, wrong), Errc::kBadCode);
  }
  ASSERT_ERR(e.auth->verify(kRoot, b->challenge, code), Errc::kBadCode);  // killed

  // A failed text: the code is gone, the caller gets a clear error, the audit says why.
  auto failed = e.auth->send_sms_code(kRoot, b->challenge);  // 3
  ASSERT_OK(failed);
  SmsDelivery refused;
  refused.status = SmsDeliveryStatus::kUnavailable;
  refused.reason = AuditReason::kProviderAuth;
  refused.message = "SMS is unavailable: the provider refused mfad's credentials";
  refused.http_status = 401;
  ASSERT_ERR(e.auth->sms_sent(*failed, refused), Errc::kSmsUnavailable);
  ASSERT_ERR(e.auth->verify(kRoot, b->challenge, code_of(*failed)), Errc::kBadCode);
  auto rows = e.audit_rows("sms.failed");
  assert_true(!rows.empty());
  assert_string_equal(rows.back().reason.c_str(), "provider-auth");
  assert_int_equal(e.events.events.size() > 0, 1);

  auto fourth = e.auth->send_sms_code(kRoot, b->challenge);  // 4
  ASSERT_OK(fourth);
  ASSERT_ERR(e.auth->send_sms_code(kRoot, b->challenge), Errc::kSmsRateLimited);
  // The window passes: texts again.
  e.clock.advance_seconds(601);
  auto b2 = e.auth->begin_authentication(kRoot, "alice", {});
  ASSERT_OK(e.auth->send_sms_code(kRoot, b2->challenge));
}

// A code texted before DisableMethod sms does not come back to life with the phone.
static void test_sms_codes_die_with_the_phone(void** /*state*/) {
  Env e(sms_config());
  enroll_sms(e);
  auto b = e.auth->begin_authentication(kRoot, "alice", {});
  ASSERT_OK(b);
  auto msg = e.auth->send_sms_code(kRoot, b->challenge);
  ASSERT_OK(msg);
  ASSERT_OK(e.auth->sms_sent(*msg, accepted()));
  ASSERT_OK(e.auth->disable_method(kRoot, "alice", "sms", ""));
  auto login = e.sqlite->get_sms_code("alice", kSmsPurposeLogin);
  assert_true(login.ok() && !*login);
  enroll_sms(e);  // the same phone again
  ASSERT_ERR(e.auth->verify(kRoot, b->challenge, code_of(*msg)), Errc::kBadCode);
}

// Step-up by SMS (issue 19): a user whose only factor is SMS has a code texted for the change.
static void test_sms_step_up(void** /*state*/) {
  Config c = sms_config();
  c.max_failures = 10;
  c.sms_max_sends_per_window = 10;
  Env e(c);
  enroll_sms(e);
  ASSERT_ERR(e.auth->generate_backup_codes(kAliceC, "alice", ""), Errc::kStepUpRequired);
  // Only alice herself may have one texted: not bob, not root (who needs none).
  ASSERT_ERR(e.auth->send_step_up_code(kBobC, "alice"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->send_step_up_code(kRoot, "alice"), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->send_step_up_code(kAliceC, "nobody"), Errc::kNoSuchUser);
  // A user without a phone: NotEnrolled, and nothing is texted.
  enroll_totp(e, "bob");
  ASSERT_ERR(e.auth->send_step_up_code(kBobC, "bob"), Errc::kNotEnrolled);

  auto msg = e.auth->send_step_up_code(kAliceC, "alice");
  ASSERT_OK(msg);
  assert_string_equal(msg->purpose.c_str(), kSmsPurposeStepUp);
  assert_string_equal(msg->details.at("purpose").c_str(), "step-up");
  auto masked = e.auth->sms_sent(*msg, accepted());
  ASSERT_OK(masked);
  assert_string_equal(masked->c_str(), "+1\u2022\u2022\u2022\u2022\u2022\u20224321");
  const std::string code = code_of(*msg);

  // A wrong code counts like a login attempt, and against the texted code.
  const std::string wrong = std::to_string(100000 + (std::stoi(code) + 1) % 900000);
  ASSERT_ERR(e.auth->generate_backup_codes(kAliceC, "alice", wrong), Errc::kBadCode);
  auto failures = e.audit_rows("auth.failure");
  assert_false(failures.empty());
  assert_string_equal(failures.back().reason.c_str(), "bad-code");
  assert_non_null(strstr(failures.back().details_json.c_str(), "\"purpose\":\"step-up\""));

  // The texted code passes once.
  auto codes = e.auth->generate_backup_codes(kAliceC, "alice", code);
  ASSERT_OK(codes);
  assert_int_equal(codes->size(), 10);
  auto successes = e.audit_rows("auth.success");
  assert_non_null(strstr(successes.back().details_json.c_str(), "\"method\":\"sms\""));
  ASSERT_ERR(e.auth->generate_backup_codes(kAliceC, "alice", code), Errc::kBadCode);

  // A login code is not a step-up code: bound to its purpose.
  const std::string ch = begin(e, "alice");
  auto login = e.auth->send_sms_code(kRoot, ch);
  ASSERT_OK(login);
  ASSERT_OK(e.auth->sms_sent(*login, accepted()));
  ASSERT_ERR(e.auth->disable_method(kAliceC, "alice", "sms", code_of(*login)), Errc::kBadCode);

  // Typed too late: CodeExpired, and no change.
  auto late = e.auth->send_step_up_code(kAliceC, "alice");
  ASSERT_OK(late);
  ASSERT_OK(e.auth->sms_sent(*late, accepted()));
  e.clock.advance_seconds(c.sms_code_lifetime_seconds + 1);
  ASSERT_ERR(e.auth->disable_method(kAliceC, "alice", "sms", code_of(*late)), Errc::kCodeExpired);

  // Disabling the phone with a texted code (SMS was alice's last factor besides backup codes).
  auto last = e.auth->send_step_up_code(kAliceC, "alice");
  ASSERT_OK(last);
  ASSERT_OK(e.auth->sms_sent(*last, accepted()));
  ASSERT_OK(e.auth->disable_method(kAliceC, "alice", "sms", code_of(*last)));
  ASSERT_ERR(e.auth->send_step_up_code(kAliceC, "alice"), Errc::kNotEnrolled);
}

// --- Rollout (docs/rollout.md, issue 18). ---
namespace {

const StringMap kRolloutEnroll{{"service", "sshd"}, {"rollout", "enroll"}, {"nullok", "no"}};
const StringMap kRolloutSkip{{"service", "sshd"}, {"rollout", "skip"}, {"nullok", "no"}};

// The secret of a login enrollment, from its lines ("Or type this key:" then groups of 4).
SecureBytes secret_from_lines(const std::vector<SecureString>& lines) {
  std::string b32;
  bool after = false;
  for (const auto& l : lines) {
    std::string_view v = l.view();
    if (v.find("Or type this key:") != std::string_view::npos) {
      after = true;
      continue;
    }
    if (!after)
      continue;
    const size_t gap = v.rfind("   ");
    std::string_view text = gap == std::string_view::npos ? v : v.substr(gap + 3);
    std::string chunk;
    for (char c : text) {
      if ((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'))
        chunk.push_back(c);
      else if (c != ' ')
        chunk.clear();
    }
    if (chunk.empty() || b32.size() >= 32)
      break;
    b32 += chunk;
  }
  auto decoded = base32_decode(b32);
  assert_true(decoded.ok());
  return std::move(decoded).value();
}

void test_rollout_old_module_and_no_rollout_unchanged(void**) {
  Env e;
  // An older module (no "rollout" context): NotEnrolled as ever.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", {{"service", "sshd"}}), Errc::kNotEnrolled);
  // A new module without `enroll` and no deadline: NotEnrolled (nullok decides in the module).
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", kRolloutSkip), Errc::kNotEnrolled);
}

void test_rollout_enroll_during_login(void**) {
  Env e;
  auto begun = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "enroll");  // no deadline: no skip
  // Never a factor's challenge.
  ASSERT_ERR(e.auth->verify(kRoot, begun->challenge, "123456"), Errc::kNotEnrolled);
  // Another caller cannot use it.
  ASSERT_ERR(e.auth->begin_login_enrollment(kRootOther, begun->challenge, ""),
             Errc::kNoSuchChallenge);
  ASSERT_ERR(e.auth->skip_enrollment(kRoot, begun->challenge), Errc::kNotAllowed);
  auto info = e.auth->get_login_enrollment(kRoot, begun->challenge);
  ASSERT_OK(info);
  assert_true(info->enroll);
  assert_false(info->skip);
  assert_false(info->token_required);
  auto lines = e.auth->begin_login_enrollment(kRoot, begun->challenge, "");
  ASSERT_OK(lines);
  size_t qr_rows = 0;
  for (const auto& l : *lines) {
    assert_true(l.size() <= dbus::kMaxEnrollmentLineLength);
    if (l.view().find("\u2588") != std::string_view::npos) {
      ++qr_rows;
      assert_true(text_columns(l.view()) <= 80);
    }
  }
  assert_true(qr_rows >= 15);
  assert_true(lines->size() <= dbus::kMaxEnrollmentLines);
  const SecureBytes key = secret_from_lines(*lines);
  // Nothing is stored before the confirmation.
  assert_true(e.sqlite->get_factors(std::string("uid/") + std::to_string(kBob))->empty());
  const std::string good = code_now(e, key);
  ASSERT_ERR(e.auth->confirm_login_enrollment(kRoot, begun->challenge,
                                              good == "000000" ? "111111" : "000000"),
             Errc::kBadCode);
  auto codes = e.auth->confirm_login_enrollment(kRoot, begun->challenge, good);
  ASSERT_OK(codes);
  assert_int_equal(codes->size(), 10);
  auto user = e.auth->get_user(kRoot, "bob");
  ASSERT_OK(user);
  assert_int_equal(user->backup_codes_left, 10);
  assert_int_equal(user->methods.size(), 2);
  // The confirming code does not open another login.
  auto next = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(next);
  assert_string_equal(next->methods[0].c_str(), "totp");
  ASSERT_ERR(e.auth->verify(kRoot, next->challenge, good), Errc::kBadCode);
  assert_int_equal(e.audit_rows("enroll.confirm").size(), 2);  // the wrong code, then the right
}

void test_rollout_enroll_refused_once_a_factor_exists(void**) {
  Env e;
  auto begun = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(begun);
  auto lines = e.auth->begin_login_enrollment(kRoot, begun->challenge, "");
  ASSERT_OK(lines);
  // An admin enrolls bob meanwhile: the login's enrollment no longer applies.
  enroll_totp(e, "bob");
  const SecureBytes key = secret_from_lines(*lines);
  ASSERT_ERR(e.auth->confirm_login_enrollment(kRoot, begun->challenge, code_now(e, key)),
             Errc::kAlreadyEnrolled);
}

void test_rollout_deadline_skip_and_after(void**) {
  Env e;
  e.config.rollout_deadline = e.clock.now_seconds() + 10 * 86400 - 100;
  auto begun = e.auth->begin_authentication(kRoot, "bob", kRolloutSkip);
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 1);
  assert_string_equal(begun->methods[0].c_str(), "skip");
  auto info = e.auth->get_login_enrollment(kRoot, begun->challenge);
  ASSERT_OK(info);
  assert_int_equal(info->days_left, 10);
  assert_non_null(strstr(info->message.c_str(), "(10 days left)"));
  ASSERT_ERR(e.auth->begin_login_enrollment(kRoot, begun->challenge, ""), Errc::kNotAllowed);
  ASSERT_OK(e.auth->skip_enrollment(kRoot, begun->challenge));
  auto skipped = e.audit_rows("auth.not-enrolled");
  assert_string_equal(skipped.back().reason.c_str(), "enrollment-skipped");
  // Once skipped, the challenge is done.
  ASSERT_ERR(e.auth->skip_enrollment(kRoot, begun->challenge), Errc::kNoSuchChallenge);

  // The deadline passes between BeginAuthentication and the empty answer: no skip.
  auto late = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(late);
  assert_int_equal(late->methods.size(), 2);
  e.config.rollout_deadline = e.clock.now_seconds() + 50;
  e.clock.advance_seconds(60);
  ASSERT_ERR(e.auth->skip_enrollment(kRoot, late->challenge), Errc::kNotAllowed);
  // After it: no skip offered; without `enroll` denied, also with nullok.
  auto after = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(after);
  assert_int_equal(after->methods.size(), 1);
  assert_string_equal(after->methods[0].c_str(), "enroll");
  ASSERT_ERR(e.auth->begin_authentication(
                 kRoot, "bob", {{"service", "sshd"}, {"rollout", "skip"}, {"nullok", "yes"}}),
             Errc::kEnrollmentRequired);
  // methods= without totp: nothing can be enrolled there.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob",
                                          {{"rollout", "enroll"}, {"methods", "sms,backup"}}),
             Errc::kEnrollmentRequired);
  // A malformed rollout context is refused.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", {{"rollout", "yes"}}),
             Errc::kInvalidArgument);
}

void test_rollout_nullok_skips_only_without_a_deadline(void**) {
  Env e;
  const StringMap nullok_enroll{{"rollout", "enroll"}, {"nullok", "yes"}};
  auto begun = e.auth->begin_authentication(kRoot, "bob", nullok_enroll);
  ASSERT_OK(begun);
  assert_int_equal(begun->methods.size(), 2);
  ASSERT_OK(e.auth->skip_enrollment(kRoot, begun->challenge));
  // nullok without enroll: NotEnrolled, which the module turns into PAM_IGNORE as ever.
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", {{"rollout", "skip"}, {"nullok", "yes"}}),
             Errc::kNotEnrolled);
}

void test_rollout_groups(void**) {
  Env e;
  e.config.rollout_groups = {"mfa-admin"};  // carol only (FakeUsers)
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "bob", kRolloutSkip), Errc::kNotRequired);
  ASSERT_ERR(e.auth->begin_authentication(kRoot, "carol", kRolloutSkip), Errc::kNotEnrolled);
  auto carol = e.auth->begin_authentication(kRoot, "carol", kRolloutEnroll);
  ASSERT_OK(carol);
  assert_string_equal(carol->methods[0].c_str(), "enroll");
  // A non-member with a factor is still asked for it.
  enroll_totp(e, "bob");
  auto bob = e.auth->begin_authentication(kRoot, "bob", kRolloutSkip);
  ASSERT_OK(bob);
  assert_string_equal(bob->methods[0].c_str(), "totp");
}

void test_rollout_enrollment_tokens(void**) {
  Env e;
  e.config.rollout_require_token = true;
  // Admin only.
  ASSERT_ERR(e.auth->create_enrollment_token(kBobC, "bob", 72), Errc::kNotAllowed);
  ASSERT_ERR(e.auth->create_enrollment_token(kRoot, "bob", 0), Errc::kInvalidArgument);
  auto token = e.auth->create_enrollment_token(kRoot, "bob", 1);
  ASSERT_OK(token);
  assert_int_equal(token->token.size(), 29);  // 24 characters in groups of 4
  auto alice_token = e.auth->create_enrollment_token(kRoot, "alice", 1);
  ASSERT_OK(alice_token);
  // Never stored in clear.
  const std::string raw(token->token.view());
  for (const auto& row : e.audit_rows())
    assert_null(strstr(row.details_json.c_str(), raw.c_str()));

  auto begun = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(begun);
  auto info = e.auth->get_login_enrollment(kRoot, begun->challenge);
  assert_true(info->token_required);
  ASSERT_ERR(e.auth->begin_login_enrollment(kRoot, begun->challenge, ""),
             Errc::kEnrollmentTokenRequired);
  // Another user's token, and a made-up one: refused, counted.
  ASSERT_ERR(e.auth->begin_login_enrollment(kRoot, begun->challenge, alice_token->token.view()),
             Errc::kNotAllowed);
  ASSERT_ERR(e.auth->begin_login_enrollment(kRoot, begun->challenge, "AAAA-BBBB"),
             Errc::kNotAllowed);
  assert_int_equal(e.audit_rows("auth.failure").size(), 2);
  // Lower case and without dashes is the same token.
  std::string typed;
  for (char ch : raw)
    if (ch != '-')
      typed.push_back(static_cast<char>(tolower(ch)));
  ASSERT_OK(e.auth->begin_login_enrollment(kRoot, begun->challenge, typed));
  // Once per challenge: a second QR code needs no token again.
  ASSERT_OK(e.auth->begin_login_enrollment(kRoot, begun->challenge, ""));
  // Spent: another login cannot use it.
  auto again = e.auth->begin_authentication(kRoot, "bob", kRolloutEnroll);
  ASSERT_OK(again);
  ASSERT_ERR(e.auth->begin_login_enrollment(kRoot, again->challenge, raw), Errc::kNotAllowed);

  // Self-service first enrollment needs one too (carried in current_code); admins need none.
  ASSERT_ERR(e.auth->begin_totp_enrollment(kAliceC, "alice", {}), Errc::kEnrollmentTokenRequired);
  TotpEnrollmentOptions with_token;
  with_token.current_code = alice_token->token.clone();
  ASSERT_OK(e.auth->begin_totp_enrollment(kAliceC, "alice", with_token));
  ASSERT_OK(e.auth->begin_totp_enrollment(kRoot, "carol", {}));

  // Expired tokens are refused.
  auto carol_token = e.auth->create_enrollment_token(kRoot, "carol", 1);
  ASSERT_OK(carol_token);
  e.clock.advance_seconds(3601);
  TotpEnrollmentOptions late;
  late.current_code = carol_token->token.clone();
  ASSERT_ERR(e.auth->begin_totp_enrollment(kCarolC, "carol", late), Errc::kNotAllowed);
}

void test_rollout_clock_drift(void**) {
  Env e;
  auto key = enroll_totp(e, "alice");
  auto begun = e.auth->begin_authentication(kRoot, "alice", {{"service", "sshd"}});
  ASSERT_OK(begun);
  // 4 steps ahead (Window=1): refused, counted, told.
  auto r = e.auth->verify(kRoot, begun->challenge, code_at(key, e.clock.now_seconds() + 120));
  ASSERT_ERR(r, Errc::kClockDrift);
  assert_non_null(strstr(r.error().message.c_str(), "120 seconds ahead"));
  auto rows = e.audit_rows("auth.failure");
  assert_string_equal(rows.back().reason.c_str(), "clock-drift");
  assert_non_null(strstr(rows.back().details_json.c_str(), "\"drift_seconds\":\"120\""));
  r = e.auth->verify(kRoot, begun->challenge, code_at(key, e.clock.now_seconds() - 240));
  ASSERT_ERR(r, Errc::kClockDrift);
  assert_non_null(strstr(r.error().message.c_str(), "240 seconds behind"));
  // Beyond 5 minutes: a wrong code.
  ASSERT_ERR(e.auth->verify(kRoot, begun->challenge, code_at(key, e.clock.now_seconds() + 600)),
             Errc::kBadCode);
  auto user = e.auth->get_user(kRoot, "alice");
  assert_int_equal(user->failures, 3);
  // Inside the window: accepted as ever.
  ASSERT_OK(e.auth->verify(kRoot, begun->challenge, code_at(key, e.clock.now_seconds() + 30)));
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_totp_enrollment_two_phase),
      cmocka_unit_test(test_enrollment_options),
      cmocka_unit_test(test_login_totp_success),
      cmocka_unit_test(test_replay_refused),
      cmocka_unit_test(test_backup_code_once),
      cmocka_unit_test(test_lockout_and_growth),
      cmocka_unit_test(test_locked_logins_are_coalesced_per_account),
      cmocka_unit_test(test_success_resets_failures),
      cmocka_unit_test(test_unlock),
      cmocka_unit_test(test_daily_cap),
      cmocka_unit_test(test_challenge_tied_to_caller),
      cmocka_unit_test(test_challenge_of_an_exited_process),
      cmocka_unit_test(test_challenge_expiry),
      cmocka_unit_test(test_challenge_caps),
      cmocka_unit_test(test_step_up),
      cmocka_unit_test(test_disable_and_reset),
      cmocka_unit_test(test_admin_clears_state_of_deleted_account),
      cmocka_unit_test(test_alias_is_the_same_account),
      cmocka_unit_test(test_records_of_an_older_version_still_work),
      cmocka_unit_test(test_alias_with_records_of_its_own_is_not_unenrolled),
      cmocka_unit_test(test_methods_not_accepted_is_not_unenrolled),
      cmocka_unit_test(test_authorization_tiers),
      cmocka_unit_test(test_admin_tier_through_polkit),
      cmocka_unit_test(test_repeated_denials_are_coalesced),
      cmocka_unit_test(test_bad_names_and_arguments),
      cmocka_unit_test(test_methods_filter),
      cmocka_unit_test(test_storage_errors),
      cmocka_unit_test(test_get_user_contents),
      cmocka_unit_test(test_sms_phone_rules),
      cmocka_unit_test(test_sms_allowed_prefixes),
      cmocka_unit_test(test_sms_login_and_expiry),
      cmocka_unit_test(test_rollout_old_module_and_no_rollout_unchanged),
      cmocka_unit_test(test_rollout_enroll_during_login),
      cmocka_unit_test(test_rollout_enroll_refused_once_a_factor_exists),
      cmocka_unit_test(test_rollout_deadline_skip_and_after),
      cmocka_unit_test(test_rollout_nullok_skips_only_without_a_deadline),
      cmocka_unit_test(test_rollout_groups),
      cmocka_unit_test(test_rollout_enrollment_tokens),
      cmocka_unit_test(test_rollout_clock_drift),
      cmocka_unit_test(test_sms_attempts_limits_and_failures),
      cmocka_unit_test(test_sms_codes_die_with_the_phone),
      cmocka_unit_test(test_sms_step_up),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

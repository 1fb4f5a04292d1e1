// `mfactl import google-authenticator USER [FILE]`, `... --all-homes` and `mfactl import oath
// FILE` (docs/mfactl.md, "import"): users keep the authenticator app they have; the secret goes
// to mfad (ImportTotp, admin only), which seals it. Files are read as import_files.hpp says.
#include <pwd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mfactl/import_files.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

constexpr uid_t kFirstLoginUid = 1000;
constexpr uid_t kNobody = 65534;

struct Account {
  std::string name;
  uid_t uid = 0;
  std::string home;
};

std::optional<Account> find_account(const std::string& name) {
  struct passwd pw_buf;
  struct passwd* pw = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(name.c_str(), &pw_buf, buf.data(), buf.size(), &pw) != 0 || pw == nullptr)
    return std::nullopt;
  return Account{pw->pw_name, pw->pw_uid, pw->pw_dir ? pw->pw_dir : ""};
}

// What one import did, for the output.
struct Outcome {
  std::string user;
  std::string source;
  std::string path;
  bool ok = false;
  std::string error;
  uint64_t backup_codes = 0;
  bool replaced = false;
  bool removed = false;
  std::vector<std::string> notes;
};

class Importer {
 public:
  explicit Importer(Context& ctx) : ctx_(ctx) {}

  void import(Outcome& o, TotpImportRequest req) {
    auto bus = ctx_.bus();
    if (!bus.ok()) {
      o.error = bus.error().message;
      return;
    }
    req.force = (ctx_.opt.given & kVoForce) != 0;
    req.source = o.source;
    req.name = ctx_.opt.name.empty() ? o.source : ctx_.opt.name;
    auto res = (*bus)->import_totp(o.user, req);
    if (!res.ok()) {
      o.error = res.error().message;
      return;
    }
    o.ok = true;
    o.backup_codes = num_field(*res, "backup_codes");
    o.replaced = res->value("replaced", false);
  }

  int finish(const std::vector<Outcome>& outcomes) {
    bool all_ok = true;
    json list = json::array();
    for (const auto& o : outcomes) {
      all_ok = all_ok && o.ok;
      list.push_back(json{{"user", o.user},
                          {"source", o.source},
                          {"file", o.path},
                          {"imported", o.ok},
                          {"error", o.error},
                          {"backup_codes", o.backup_codes},
                          {"replaced", o.replaced},
                          {"removed", o.removed},
                          {"notes", o.notes}});
      if (ctx_.opt.json)
        continue;
      if (!o.ok) {
        (void)fprintf(stderr, "mfactl: %s%s%s: not imported: %s\n", o.user.c_str(),
                      o.path.empty() ? "" : " from ", o.path.c_str(), o.error.c_str());
        continue;
      }
      printf("Imported %s's authenticator from %s (%s)%s, %llu backup code%s.%s\n", o.user.c_str(),
             o.path.c_str(), o.source.c_str(), o.replaced ? ", replacing their TOTP" : "",
             static_cast<unsigned long long>(o.backup_codes), o.backup_codes == 1 ? "" : "s",
             o.removed ? " The file was removed." : "");
      for (const auto& n : o.notes)
        printf("  %s\n", n.c_str());
    }
    if (ctx_.opt.json)
      print_json(json{{"ok", all_ok}, {"imports", list}});
    else if (outcomes.empty())
      puts("Nothing to import.");
    else if (all_ok)
      puts("Their authenticator apps keep working: no new QR code to scan.");
    return all_ok ? kExitOk : kExitFailed;
  }

 private:
  Context& ctx_;
};

// One google-authenticator file, already open.
void import_google_authenticator(Importer& importer, SourceFile file, Outcome& o, bool remove) {
  o.path = file.path;
  auto parsed = parse_google_authenticator(file.text.view());
  if (!parsed.ok()) {
    o.error = parsed.error().message;
    return;
  }
  o.notes = parsed->notes;
  TotpImportRequest req;
  req.secret_base32 = std::move(parsed->secret_base32);
  req.period = static_cast<uint32_t>(parsed->period);
  req.backup_codes = std::move(parsed->scratch_codes);
  importer.import(o, std::move(req));
  if (o.ok && remove) {
    Status st = remove_source(file);
    o.removed = st.ok();
    if (!st.ok())
      o.notes.push_back("not removed: " + st.error().message);
  }
}

int import_all_homes(Context& ctx, Importer& importer) {
  std::vector<Account> accounts;
  setpwent();
  while (struct passwd* pw = getpwent()) {
    if (pw->pw_uid >= kFirstLoginUid && pw->pw_uid != kNobody && pw->pw_dir)
      accounts.push_back(Account{pw->pw_name, pw->pw_uid, pw->pw_dir});
  }
  endpwent();
  std::vector<Outcome> outcomes;
  for (const auto& a : accounts) {
    auto file = open_home_file(a.home, a.uid, kGoogleAuthenticatorFile);
    if (!file.ok() && file.error().code == Errc::kNotEnrolled)
      continue;  // no file: nothing to import
    Outcome o{a.name, "google-authenticator", a.home + "/" + kGoogleAuthenticatorFile};
    if (!file.ok()) {
      o.error = file.error().message;
    } else {
      import_google_authenticator(importer, std::move(file).value(), o,
                                  (ctx.opt.given & kVoRemove) != 0);
    }
    outcomes.push_back(std::move(o));
  }
  return importer.finish(outcomes);
}

int import_oath(Context& ctx, Importer& importer, const std::string& path) {
  // pam_oath's usersfile is root's (it holds everyone's secrets).
  auto file = open_named_file(path, {0});
  if (!file.ok())
    return fail(file.error());
  std::vector<Outcome> outcomes;
  for (auto& e : parse_oath_usersfile(file->text.view())) {
    Outcome o{e.user.empty() ? "line " + std::to_string(e.line) : e.user, "oath",
              file->path + ":" + std::to_string(e.line)};
    o.notes = e.notes;
    if (!e.problem.empty()) {
      o.error = e.problem;
    } else if (e.digits < 6 || e.digits > 8) {
      o.error = std::to_string(e.digits) + "-digit codes: mfad takes 6 to 8";
    } else {
      TotpImportRequest req;
      req.secret_base32 = std::move(e.secret_base32);
      req.digits = static_cast<uint32_t>(e.digits);
      req.period = static_cast<uint32_t>(e.period);
      importer.import(o, std::move(req));
    }
    outcomes.push_back(std::move(o));
  }
  const bool all_ok = !outcomes.empty() && std::all_of(outcomes.begin(), outcomes.end(),
                                                       [](const Outcome& o) { return o.ok; });
  if ((ctx.opt.given & kVoRemove) != 0) {
    if (all_ok) {
      Status st = remove_source(*file);
      for (auto& o : outcomes) {
        o.removed = st.ok();
        if (!st.ok())
          o.notes.push_back("not removed: " + st.error().message);
      }
    } else if (!ctx.opt.json) {
      (void)fprintf(stderr, "mfactl: %s was kept: not every entry was imported\n", path.c_str());
    }
  }
  return importer.finish(outcomes);
}

}  // namespace

int cmd_import(Context& ctx, const std::vector<char*>& args) {
  const unsigned allowed = kVoRemove | kVoForce | kVoName | kVoAllHomes;
  if (args.empty())
    return usage_error("import needs a source: google-authenticator or oath");
  const std::string source = args[0];
  const std::vector<char*> rest(args.begin() + 1, args.end());
  if (!ctx.opt.name.empty() &&
      (ctx.opt.name.size() > 32 || ctx.opt.name.find('/') != std::string::npos))
    return usage_error("--name takes 1 to 32 letters, digits, '-', '_' or '.'");
  Importer importer(ctx);
  if (source == "oath") {
    if (int r = check_args(ctx, rest, 1, 1, allowed & ~kVoAllHomes, "import oath"))
      return r;
    return import_oath(ctx, importer, rest[0]);
  }
  if (source != "google-authenticator")
    return usage_error("import takes google-authenticator or oath, not '" + source.substr(0, 32) +
                       "'");
  if ((ctx.opt.given & kVoAllHomes) != 0) {
    if (int r = check_args(ctx, rest, 0, 0, allowed, "import google-authenticator --all-homes"))
      return r;
    return import_all_homes(ctx, importer);
  }
  if (int r = check_args(ctx, rest, 1, 2, allowed, "import google-authenticator"))
    return r;
  const std::string user = rest[0];
  auto account = find_account(user);
  if (!account)
    return fail("no such user '" + user + "'");
  auto file = rest.size() > 1
                  ? open_named_file(rest[1], {account->uid, 0})
                  : open_home_file(account->home, account->uid, kGoogleAuthenticatorFile);
  if (!file.ok())
    return fail(file.error());
  std::vector<Outcome> outcomes(1);
  outcomes[0].user = account->name;
  outcomes[0].source = "google-authenticator";
  import_google_authenticator(importer, std::move(file).value(), outcomes[0],
                              (ctx.opt.given & kVoRemove) != 0);
  return importer.finish(outcomes);
}

}  // namespace mfa::ctl

#include "common/backup_codes.hpp"

#include <algorithm>

#include "common/crypto.hpp"

namespace mfa {

// No 0/O, 1/I/L, 5/S, 2/Z, 8/B: nothing that reads as something else on paper.
const std::string_view kBackupCodeAlphabet = "ACDEFGHJKMNPQRTUVWXY34679";

namespace {

constexpr int kMaxBackupCodeCount = 100;
// Longer input is not a backup code, whatever it contains.
constexpr size_t kMaxTypedLength = 64;

bool has_letter(std::string_view code) {
  return std::any_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

SecureString random_code() {
  // A code made only of digits would read as an 8-digit TOTP code at the prompt; such draws are
  // redrawn (a 1 in 390625 event).
  for (;;) {
    char buf[kBackupCodeLength];
    for (char& c : buf)
      c = kBackupCodeAlphabet[random_uniform(kBackupCodeAlphabet.size())];
    SecureString code{std::string_view(buf, sizeof buf)};
    secure_erase(buf, sizeof buf);
    if (has_letter(code.view()))
      return code;
  }
}

}  // namespace

std::vector<SecureString> generate_backup_codes(int count) {
  std::vector<SecureString> codes;
  count = std::clamp(count, 0, kMaxBackupCodeCount);
  codes.reserve(static_cast<size_t>(count));
  while (codes.size() < static_cast<size_t>(count)) {
    SecureString code = random_code();
    const bool duplicate = std::any_of(
        codes.begin(), codes.end(), [&](const SecureString& c) { return c.view() == code.view(); });
    if (!duplicate)
      codes.push_back(std::move(code));
  }
  return codes;
}

std::optional<SecureString> normalize_backup_code(std::string_view typed) {
  if (typed.size() > kMaxTypedLength)
    return std::nullopt;
  char buf[kMaxTypedLength];
  size_t n = 0;
  bool ok = true;
  for (char c : typed) {
    if (c == ' ' || c == '-' || c == '\t')
      continue;
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
    if (kBackupCodeAlphabet.find(c) == std::string_view::npos)
      ok = false;
    buf[n++] = c;
  }
  std::optional<SecureString> out;
  if (ok && n == static_cast<size_t>(kBackupCodeLength))
    out.emplace(std::string_view(buf, n));
  secure_erase(buf, sizeof buf);
  return out;
}

std::optional<SecureString> canonical_backup_code(std::string_view typed) {
  if (auto code = normalize_backup_code(typed))
    return code;
  if (typed.size() != static_cast<size_t>(kBackupCodeLength) ||
      !std::all_of(typed.begin(), typed.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return SecureString(typed);
}

bool looks_like_backup_code(std::string_view typed) {
  auto code = normalize_backup_code(typed);
  return code && has_letter(code->view());
}

std::string format_backup_code(std::string_view canonical) {
  if (canonical.size() != static_cast<size_t>(kBackupCodeLength))
    return std::string(canonical);
  std::string out(canonical.substr(0, 4));
  out.push_back('-');
  out.append(canonical.substr(4));
  return out;
}

}  // namespace mfa

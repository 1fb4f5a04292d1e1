#include "common/otpauth.hpp"

#include <charconv>
#include <optional>

#include "common/base32.hpp"

namespace mfa {

namespace {

constexpr size_t kMaxUriLength = 4096;
constexpr int kMaxPeriod = 3600;

bool is_unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z')
      x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = static_cast<char>(y - 'A' + 'a');
    if (x != y)
      return false;
  }
  return true;
}

Error invalid(std::string message) {
  return make_error(Errc::kInvalidArgument, "otpauth URI: " + std::move(message));
}

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty())
    return std::nullopt;
  return v;
}

// Names end up in terminals, logs and D-Bus replies: no control characters (log injection).
bool has_control(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      return true;
  }
  return false;
}

}  // namespace

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (is_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  return out;
}

Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size())
      return make_error(Errc::kInvalidArgument, "truncated percent-encoding");
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0)
      return make_error(Errc::kInvalidArgument, "invalid percent-encoding");
    const char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0')
      return make_error(Errc::kInvalidArgument, "percent-encoded NUL character");
    out.push_back(c);
    i += 2;
  }
  return out;
}

SecureString build_otpauth_uri(const OtpauthUri& uri) {
  SecureString out;
  const std::string secret = base32_encode(uri.secret.span());
  std::string head = "otpauth://totp/";
  if (!uri.issuer.empty())
    head += percent_encode(uri.issuer) + ":";
  head += percent_encode(uri.account);
  head += "?secret=";
  out.append(head);
  out.append(secret);
  std::string tail;
  if (!uri.issuer.empty())
    tail += "&issuer=" + percent_encode(uri.issuer);
  tail += "&algorithm=";
  tail += otp_algorithm_name(uri.params.algorithm);
  tail += "&digits=" + std::to_string(uri.params.digits);
  tail += "&period=" + std::to_string(uri.params.period);
  out.append(tail);
  // The encoded secret lived in a plain std::string for a moment; erase it before it is freed.
  secure_erase(const_cast<char*>(secret.data()), secret.size());
  return out;
}

Result<OtpauthUri> parse_otpauth_uri(std::string_view text) {
  if (text.size() > kMaxUriLength)
    return invalid("longer than 4096 characters");
  constexpr std::string_view kScheme = "otpauth://";
  if (text.size() < kScheme.size() || !iequals(text.substr(0, kScheme.size()), kScheme))
    return invalid("scheme is not otpauth://");
  text.remove_prefix(kScheme.size());

  const size_t slash = text.find('/');
  if (slash == std::string_view::npos)
    return invalid("missing type and label");
  const std::string_view type = text.substr(0, slash);
  if (iequals(type, "hotp"))
    return invalid("type hotp is not supported, only totp");
  if (!iequals(type, "totp"))
    return invalid("type is not totp");
  text.remove_prefix(slash + 1);

  const size_t question = text.find('?');
  if (question == std::string_view::npos)
    return invalid("missing parameters (no secret)");
  const std::string_view raw_label = text.substr(0, question);
  std::string_view query = text.substr(question + 1);

  // The separator is a literal ':' (what build_otpauth_uri writes; a ':' inside the issuer is
  // then %3A) or, failing that, an encoded one.
  std::string_view raw_issuer, raw_account = raw_label;
  bool has_issuer = false;
  if (const size_t colon = raw_label.find(':'); colon != std::string_view::npos) {
    raw_issuer = raw_label.substr(0, colon);
    raw_account = raw_label.substr(colon + 1);
    has_issuer = true;
  } else {
    for (size_t i = 0; i + 3 <= raw_label.size(); ++i) {
      if (raw_label[i] == '%' && raw_label[i + 1] == '3' &&
          (raw_label[i + 2] == 'A' || raw_label[i + 2] == 'a')) {
        raw_issuer = raw_label.substr(0, i);
        raw_account = raw_label.substr(i + 3);
        has_issuer = true;
        break;
      }
    }
  }
  OtpauthUri uri;
  std::optional<std::string> label_issuer;
  if (has_issuer) {
    auto issuer = percent_decode(raw_issuer);
    if (!issuer)
      return invalid("label: " + issuer.error().message);
    if (issuer->empty())
      return invalid("empty issuer before ':' in the label");
    label_issuer = std::move(*issuer);
  }
  auto account = percent_decode(raw_account);
  if (!account)
    return invalid("label: " + account.error().message);
  uri.account = std::move(*account);
  // Key Uri Format: optional spaces between the colon and the account name.
  const size_t first = uri.account.find_first_not_of(' ');
  uri.account.erase(0, first == std::string::npos ? uri.account.size() : first);
  if (uri.account.empty())
    return invalid("missing account name in the label");
  if (has_control(uri.account) || (label_issuer && has_control(*label_issuer)))
    return invalid("label contains control characters");

  std::optional<SecureBytes> secret;
  std::optional<std::string> issuer_param;
  bool seen_algorithm = false, seen_digits = false, seen_period = false;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty())
      continue;
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (key == "secret") {
      if (secret)
        return invalid("secret given twice");
      // Base32 never needs escaping; only '=' padding might arrive as %3D.
      auto value = percent_decode(raw_value);
      if (!value)
        return invalid("secret is not valid base32");
      auto decoded = base32_decode(*value);
      secure_erase(value->data(), value->size());
      if (!decoded)
        return invalid("secret is not valid base32");
      if (decoded->empty())
        return invalid("secret is empty");
      secret = std::move(decoded).value();
    } else if (key == "issuer") {
      if (issuer_param)
        return invalid("issuer given twice");
      auto value = percent_decode(raw_value);
      if (!value)
        return invalid("issuer: " + value.error().message);
      if (has_control(*value))
        return invalid("issuer contains control characters");
      issuer_param = std::move(*value);
    } else if (key == "algorithm") {
      if (seen_algorithm)
        return invalid("algorithm given twice");
      seen_algorithm = true;
      auto alg = parse_otp_algorithm(raw_value);
      if (!alg)
        return invalid("unknown algorithm (expected SHA1, SHA256 or SHA512)");
      uri.params.algorithm = *alg;
    } else if (key == "digits") {
      if (seen_digits)
        return invalid("digits given twice");
      seen_digits = true;
      auto digits = parse_int(raw_value);
      if (!digits || *digits < 6 || *digits > 8)
        return invalid("digits must be 6, 7 or 8");
      uri.params.digits = *digits;
    } else if (key == "period") {
      if (seen_period)
        return invalid("period given twice");
      seen_period = true;
      auto period = parse_int(raw_value);
      if (!period || *period <= 0 || *period > kMaxPeriod)
        return invalid("period must be between 1 and 3600 seconds");
      uri.params.period = *period;
    }
    // Other parameters (image, counter, ...) are not ours to judge: ignored.
  }
  if (!secret)
    return invalid("missing secret");
  uri.secret = std::move(*secret);
  if (label_issuer && issuer_param && *label_issuer != *issuer_param)
    return invalid("issuer parameter does not match the label");
  if (issuer_param)
    uri.issuer = std::move(*issuer_param);
  else if (label_issuer)
    uri.issuer = std::move(*label_issuer);
  return uri;
}

}  // namespace mfa

#include "common/enrollment_card.hpp"

#include "common/qr.hpp"

namespace mfa {

namespace {

constexpr size_t kGap = 3;  // columns between the QR code and the text beside it
constexpr size_t kGroupsPerLine = 4;

// Splits text at '\n' (the last line may end without one).
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos)
      break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace

size_t text_columns(std::string_view line) {
  size_t n = 0;
  for (char c : line) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80)
      ++n;
  }
  return n;
}

SecureString group_secret(std::string_view secret_base32) {
  SecureString out;
  for (size_t i = 0; i < secret_base32.size(); i += 4) {
    if (i > 0)
      out.append(" ");
    out.append(secret_base32.substr(i, 4));
  }
  return out;
}

Result<std::vector<SecureString>> enrollment_card(std::string_view otpauth_uri,
                                                  std::string_view secret_base32,
                                                  size_t max_line_bytes) {
  MFA_TRY(qr_text, qr_utf8(otpauth_uri));
  SecureString qr(qr_text);
  qr_text.assign(qr_text.size(), '\0');
  const std::vector<std::string_view> qr_lines = split_lines(qr.view());
  const size_t qr_columns = qr_lines.empty() ? 0 : text_columns(qr_lines.front());

  // The secret, 4 groups a line: "Secret key:" then its lines, beside the QR code when they fit
  // in 80 columns, below it otherwise.
  std::vector<SecureString> side;
  side.emplace_back("Or type this key:");
  for (size_t i = 0; i < secret_base32.size(); i += 4 * kGroupsPerLine)
    side.push_back(group_secret(secret_base32.substr(i, 4 * kGroupsPerLine)));
  size_t side_columns = 0;
  for (const auto& s : side)
    side_columns = std::max(side_columns, text_columns(s.view()));
  const bool beside = qr_columns + kGap + side_columns <= kEnrollmentCardColumns;

  std::vector<SecureString> lines;
  lines.emplace_back("Scan this QR code with your authenticator app:");
  // Beside: the text starts on the QR code's second line, clear of the quiet zone's top row.
  const size_t first_side_row = qr_lines.size() > side.size() + 1 ? 1 : 0;
  for (size_t row = 0; row < qr_lines.size(); ++row) {
    SecureString line(qr_lines[row]);
    if (beside && row >= first_side_row && row - first_side_row < side.size()) {
      line.append(std::string(kGap, ' '));
      line.append(side[row - first_side_row].view());
    }
    lines.push_back(std::move(line));
  }
  if (!beside) {
    for (auto& s : side)
      lines.push_back(std::move(s));
  }
  if (otpauth_uri.size() <= max_line_bytes)
    lines.emplace_back(otpauth_uri);
  for (const auto& l : lines) {
    if (l.size() > max_line_bytes)
      return make_error(Errc::kInvalidArgument, "the QR code is too wide to show");
  }
  return lines;
}

}  // namespace mfa

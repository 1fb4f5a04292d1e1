#include "common/base32.hpp"

namespace mfa {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t kMaxBase32Input = 1024;

int decode_char(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a';
  if (c >= '2' && c <= '7')
    return c - '2' + 26;
  return -1;
}

}  // namespace

std::string base32_encode(std::span<const uint8_t> data) {
  std::string out;
  out.reserve((data.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kAlphabet[(buffer >> bits) & 0x1f]);
    }
  }
  if (bits > 0)
    out.push_back(kAlphabet[(buffer << (5 - bits)) & 0x1f]);
  return out;
}

Result<SecureBytes> base32_decode(std::string_view text) {
  if (text.size() > kMaxBase32Input)
    return make_error(Errc::kInvalidArgument, "base32 text is longer than 1024 characters");
  SecureBytes scratch(text.size() * 5 / 8 + 1);
  size_t out_len = 0;
  size_t symbols = 0;
  bool padding = false;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == ' ')
      continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int v = decode_char(c);
    if (v < 0)
      return make_error(Errc::kInvalidArgument, "base32 text contains an invalid character");
    if (padding)
      return make_error(Errc::kInvalidArgument, "base32 text continues after '=' padding");
    ++symbols;
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      scratch.data()[out_len++] = static_cast<uint8_t>(buffer >> bits);
    }
  }
  secure_erase(&buffer, sizeof buffer);
  // A final group of 1, 3 or 6 symbols cannot come from whole bytes (RFC 4648 §6).
  switch (symbols % 8) {
    case 1:
    case 3:
    case 6:
      return make_error(Errc::kInvalidArgument, "base32 text has an impossible length");
    default:
      break;
  }
  return SecureBytes(std::span<const uint8_t>(scratch.data(), out_len));
}

}  // namespace mfa

#include "fleet/record_mac.hpp"

#include <charconv>

#include "common/crypto.hpp"

namespace mfa::fleet {

namespace {

constexpr char kMacDomain[] = "mfad fleet record";
constexpr size_t kMacHexLength = 64;
constexpr size_t kMaxHostLength = 64;

void append_lp(std::string& out, std::string_view s) {
  const auto n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(s);
}

bool lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}

}  // namespace

const char* record_problem_name(RecordProblem problem) {
  switch (problem) {
    case RecordProblem::kNone:
      return "";
    case RecordProblem::kMalformed:
      return "malformed-record";
    case RecordProblem::kLegacy:
      return "legacy-record";
    case RecordProblem::kBadMac:
      return "bad-mac";
  }
  return "malformed-record";
}

std::string field_key_name(std::string_view key, std::string_view field) {
  return std::string(key) + "#" + std::string(field);
}

RecordMac::RecordMac(SecureBytes key, std::string host)
    : key_(std::move(key)), host_(std::move(host)) {}

Result<RecordMac> RecordMac::derive(std::span<const uint8_t> master_key, std::string host) {
  MFA_TRY(key, hkdf_sha256(master_key, kRecordMacLabel, 32));
  return RecordMac(std::move(key), std::move(host));
}

std::string RecordMac::mac_hex(std::string_view key_name, std::string_view host, uint64_t counter,
                               std::string_view payload) const {
  std::string data = kMacDomain;
  append_lp(data, kRecordVersion);
  append_lp(data, key_name);
  append_lp(data, host);
  for (int shift = 56; shift >= 0; shift -= 8)
    data.push_back(static_cast<char>((counter >> shift) & 0xff));
  append_lp(data, payload);
  auto mac = hmac_sha256(key_.span(),
                         std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  // HMAC with a 32-byte key cannot fail but for memory; an empty MAC matches nothing.
  return mac.ok() ? to_hex(mac->span()) : std::string();
}

std::string RecordMac::seal(std::string_view key_name, uint64_t counter,
                            std::string_view payload) const {
  std::string out = std::string(kRecordVersion) + "|" + host_ + "|" + std::to_string(counter) +
                    "|" + std::string(payload) + "|";
  out += mac_hex(key_name, host_, counter, payload);
  return out;
}

RecordProblem RecordMac::open(std::string_view key_name, std::string_view value,
                              SignedRecord* ret) const {
  if (value.size() > kMaxRecordValue)
    return RecordProblem::kMalformed;
  const std::string prefix = std::string(kRecordVersion) + "|";
  if (!value.starts_with(prefix))
    return RecordProblem::kLegacy;
  std::string_view rest = value.substr(prefix.size());
  const size_t host_end = rest.find('|');
  if (host_end == std::string_view::npos || host_end == 0 || host_end > kMaxHostLength)
    return RecordProblem::kMalformed;
  const std::string_view host = rest.substr(0, host_end);
  rest.remove_prefix(host_end + 1);
  const size_t counter_end = rest.find('|');
  if (counter_end == std::string_view::npos || counter_end == 0)
    return RecordProblem::kMalformed;
  uint64_t counter = 0;
  const char* first = rest.data();
  const char* last = rest.data() + counter_end;
  auto [p, ec] = std::from_chars(first, last, counter);
  if (ec != std::errc() || p != last || (counter_end > 1 && rest.front() == '0'))
    return RecordProblem::kMalformed;
  rest.remove_prefix(counter_end + 1);
  if (rest.size() < kMacHexLength + 1 || rest[rest.size() - kMacHexLength - 1] != '|')
    return RecordProblem::kMalformed;
  const std::string_view mac = rest.substr(rest.size() - kMacHexLength);
  const std::string_view payload = rest.substr(0, rest.size() - kMacHexLength - 1);
  if (!lower_hex(mac))
    return RecordProblem::kMalformed;
  if (!ct_equal(mac, mac_hex(key_name, host, counter, payload)))
    return RecordProblem::kBadMac;
  ret->host = std::string(host);
  ret->counter = counter;
  ret->payload = std::string(payload);
  return RecordProblem::kNone;
}

}  // namespace mfa::fleet

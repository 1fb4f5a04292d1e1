#include "mfactl/format.hpp"

#include <charconv>
#include <ctime>

namespace mfa::ctl {
namespace {

size_t display_width(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80)
      ++n;  // count code points, not continuation bytes
  }
  return n;
}

bool parse_uint(std::string_view s, uint64_t& ret) {
  if (s.empty())
    return false;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size())
    return false;
  ret = v;
  return true;
}

bool all_digits(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
  }
  return true;
}

// "YYYY-MM-DD" with optional "THH:MM:SS" / " HH:MM:SS" and optional "Z": UTC.
bool parse_iso(std::string_view s, int64_t& ret) {
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z'))
    s.remove_suffix(1);
  if (s.size() != 10 && s.size() != 19)
    return false;
  auto field = [&](size_t pos, size_t len, uint64_t& v) {
    return all_digits(s.substr(pos, len)) && parse_uint(s.substr(pos, len), v);
  };
  uint64_t year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  if (!field(0, 4, year) || s[4] != '-' || !field(5, 2, mon) || s[7] != '-' || !field(8, 2, day)) {
    return false;
  }
  if (s.size() == 19) {
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !field(11, 2, hour) || s[13] != ':' ||
        !field(14, 2, min) || s[16] != ':' || !field(17, 2, sec)) {
      return false;
    }
  }
  if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
      sec > 60) {
    return false;
  }
  struct tm tm = {};
  tm.tm_year = static_cast<int>(year) - 1900;
  tm.tm_mon = static_cast<int>(mon) - 1;
  tm.tm_mday = static_cast<int>(day);
  tm.tm_hour = static_cast<int>(hour);
  tm.tm_min = static_cast<int>(min);
  tm.tm_sec = static_cast<int>(sec);
  time_t t = timegm(&tm);
  // timegm normalises 2026-02-31 to March: refuse dates that do not exist.
  if (t == static_cast<time_t>(-1) || tm.tm_mday != static_cast<int>(day) ||
      tm.tm_mon != static_cast<int>(mon) - 1) {
    return false;
  }
  ret = static_cast<int64_t>(t);
  return true;
}

}  // namespace

std::string format_table(const TableRow& header, const std::vector<TableRow>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const TableRow& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], display_width(row[i]));
    }
  };
  measure(header);
  for (const auto& row : rows)
    measure(row);
  std::string out;
  auto emit = [&](const TableRow& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : std::string();
      line += cell;
      if (i + 1 < widths.size())
        line.append(widths[i] - display_width(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line;
    out += '\n';
  };
  emit(header);
  for (const auto& row : rows)
    emit(row);
  return out;
}

std::string format_unix_time(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm = {};
  if (!gmtime_r(&t, &tm))
    return std::to_string(unix_seconds);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return n ? std::string(buf, n) : std::to_string(unix_seconds);
}

std::string format_unix_time_usec(int64_t unix_usec) {
  return format_unix_time(unix_usec / 1000000);
}

Result<int64_t> parse_since(std::string_view text, int64_t now_unix_seconds) {
  auto bad = [&] {
    return make_error(Errc::kInvalidArgument,
                      "invalid time '" + std::string(text.substr(0, 64)) +
                          "': use unix seconds, 2026-11-24T10:00:00Z, 2026-11-24 or an age "
                          "like 30m, 1h, 7d");
  };
  if (text.empty() || text.size() > 32)
    return bad();
  uint64_t v = 0;
  if (all_digits(text)) {
    if (!parse_uint(text, v) || v > (1ULL << 40))
      return bad();
    return static_cast<int64_t>(v);
  }
  int64_t iso = 0;
  if (parse_iso(text, iso))
    return iso;
  const char unit = text.back();
  std::string_view number = text.substr(0, text.size() - 1);
  int64_t scale = 0;
  switch (unit) {
    case 's':
      scale = 1;
      break;
    case 'm':
      scale = 60;
      break;
    case 'h':
      scale = 3600;
      break;
    case 'd':
      scale = 86400;
      break;
    case 'w':
      scale = int64_t{7} * 86400;
      break;
    default:
      return bad();
  }
  // Bounded so that the product cannot overflow: 100 years at most.
  if (!all_digits(number) || !parse_uint(number, v) ||
      v > static_cast<uint64_t>(100LL * 366 * 86400 / scale)) {
    return bad();
  }
  int64_t since = now_unix_seconds - static_cast<int64_t>(v) * scale;
  return since < 0 ? 0 : since;
}

SecureString group_in_fours(std::string_view secret) {
  SecureString out;
  for (size_t i = 0; i < secret.size(); i += 4) {
    if (i)
      out.append(" ");
    out.append(secret.substr(i, 4));
  }
  return out;
}

std::string join_or_dash(const std::vector<std::string>& items) {
  if (items.empty())
    return "-";
  std::string out;
  for (const auto& s : items) {
    if (!out.empty())
      out += ", ";
    out += s;
  }
  return out;
}

}  // namespace mfa::ctl

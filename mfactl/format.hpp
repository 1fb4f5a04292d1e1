// What mfactl shows people: aligned tables, times, grouped secrets; and how it reads the times
// people type (--since).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa::ctl {

using TableRow = std::vector<std::string>;

// Columns left-aligned, two spaces apart, widths in characters (UTF-8 aware); no trailing spaces.
std::string format_table(const TableRow& header, const std::vector<TableRow>& rows);

// "2026-11-24 10:00:00 UTC".
std::string format_unix_time(int64_t unix_seconds);
// Audit rows carry microseconds.
std::string format_unix_time_usec(int64_t unix_usec);

// --since: unix seconds ("1764000000"), ISO 8601 UTC ("2026-11-24T10:00:00Z", also without the
// Z or with a space), a date ("2026-11-24", midnight UTC), or an age ("90s", "30m", "1h", "7d",
// "2w") counted back from now. Returns unix seconds; kInvalidArgument with a message otherwise.
Result<int64_t> parse_since(std::string_view text, int64_t now_unix_seconds);

// "JBSW Y3DP EHPK 3PXP": easier to type from the screen.
SecureString group_in_fours(std::string_view secret);

// "a, b, c"; "-" for none.
std::string join_or_dash(const std::vector<std::string>& items);

}  // namespace mfa::ctl

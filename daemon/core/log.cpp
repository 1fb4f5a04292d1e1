#include "core/log.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace mfa {

void log_message(int priority, const char* format, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, format);
  vsnprintf(line, sizeof line, format, ap);
  va_end(ap);
  // One fprintf per line so that concurrent writers (there are none today) cannot interleave.
  if (getenv("JOURNAL_STREAM") != nullptr) {
    fprintf(stderr, "<%d>%s\n", priority, line);
  } else {
    fprintf(stderr, "mfad: %s\n", line);
  }
}

}  // namespace mfa

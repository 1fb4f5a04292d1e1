#include "mfactl/tty.hpp"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "common/dbus_names.hpp"
#include "common/handles.hpp"

namespace mfa::ctl {
namespace {

// What the signal handler needs to put the terminal back; mfactl is single-threaded.
volatile sig_atomic_t g_tty_fd = -1;
struct termios g_saved_termios;

constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_and_reraise(int sig) {
  const int fd = g_tty_fd;
  if (fd >= 0) {
    (void)tcsetattr(fd, TCSANOW, &g_saved_termios);
    ssize_t ignored = write(fd, "\n", 1);  // best effort: the process is about to die
    (void)ignored;
  }
  (void)signal(sig, SIG_DFL);
  (void)raise(sig);
}

// Echo off for its lifetime, and signal handlers that undo it.
class EchoOff {
 public:
  EchoOff(int fd, const struct termios& saved) : fd_(fd) {
    g_saved_termios = saved;
    g_tty_fd = fd;
    struct sigaction sa = {};
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      sigaction(kRestoreSignals[i], &sa, &old_actions_[i]);
    }
    struct termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ok_ = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    (void)tcsetattr(fd_, TCSAFLUSH, &g_saved_termios);
    g_tty_fd = -1;
    for (size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      sigaction(kRestoreSignals[i], &old_actions_[i], nullptr);
    }
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;
  bool ok() const { return ok_; }

 private:
  int fd_;
  bool ok_ = false;
  struct sigaction old_actions_[std::size(kRestoreSignals)] = {};
};

bool write_all(int fd, const char* s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    s += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

enum class LongLine { kReadToItsEnd, kStop };

// One line from fd without its newline, at most dbus::kMaxCodeLength bytes.
Result<SecureString> read_code_line(int fd, LongLine long_line) {
  // A fixed buffer, erased before returning, so that no reallocation leaves a copy behind.
  char buf[dbus::kMaxCodeLength];
  size_t len = 0;
  bool too_long = false;
  bool got_any = false;
  for (;;) {
    char c = 0;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      secure_erase(buf, sizeof buf);
      return make_error(Errc::kIo, std::string("cannot read: ") + std::strerror(errno));
    }
    if (n == 0)
      break;
    got_any = true;
    if (c == '\n')
      break;
    if (c == '\r')
      continue;
    if (len >= sizeof buf) {
      too_long = true;  // keep nothing more; on a terminal, read to the end of the line
      if (long_line == LongLine::kStop)
        break;
      continue;
    }
    buf[len++] = c;
    secure_erase(&c, 1);
  }
  SecureString line(std::string_view(buf, too_long ? 0 : len));
  secure_erase(buf, sizeof buf);
  if (!got_any)
    return make_error(Errc::kIo, "no answer (end of input)");
  if (too_long) {
    return make_error(Errc::kInvalidArgument, "that answer is too long to be a code");
  }
  return line;
}

}  // namespace

bool stdin_is_terminal() {
  return isatty(STDIN_FILENO) == 1;
}

Result<SecureString> read_hidden_line(const char* prompt) {
  Fd tty(open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!tty.valid()) {
    return make_error(Errc::kIo, std::string("cannot open the terminal: ") + std::strerror(errno));
  }
  struct termios saved = {};
  if (tcgetattr(tty.get(), &saved) != 0) {
    return make_error(Errc::kIo, std::string("not a terminal: ") + std::strerror(errno));
  }
  EchoOff echo_off(tty.get(), saved);
  if (!echo_off.ok())
    return make_error(Errc::kIo, "cannot turn off the terminal's echo");
  if (!write_all(tty.get(), prompt, std::strlen(prompt))) {
    return make_error(Errc::kIo, "cannot write to the terminal");
  }
  return read_code_line(tty.get(), LongLine::kReadToItsEnd);
}

Result<SecureString> read_code_from_stdin() {
  // Typed rather than piped: not echoed.
  auto line = stdin_is_terminal() ? read_hidden_line("Verification code: ")
                                  : read_code_line(STDIN_FILENO, LongLine::kStop);
  if (!line.ok() && line.error().code == Errc::kIo)
    return make_error(Errc::kIo, "no code on standard input (" + line.error().message + ")");
  if (line.ok() && line->size() == 0)
    return make_error(Errc::kIo, "no code on standard input (an empty line)");
  return line;
}

}  // namespace mfa::ctl

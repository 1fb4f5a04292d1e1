// Asking a person for a code on the controlling terminal, echo off.
#pragma once

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa::ctl {

// Whether mfactl may ask questions: standard input is a terminal.
bool stdin_is_terminal();

// Writes prompt to /dev/tty, reads one line with echo off and returns it without the newline.
// The terminal's settings are restored on every path, also when a signal (Ctrl-C) ends mfactl
// while it waits. Errors: kIo (no terminal, end of input), kInvalidArgument (longer than
// dbus::kMaxCodeLength).
Result<SecureString> read_hidden_line(const char* prompt);

// The `-` of `--current-code -` and of a CODE argument: one line from standard input, without its
// newline, so that a code never has to sit on a command line (visible in ps). Errors: kIo (end of
// input), kInvalidArgument (longer than dbus::kMaxCodeLength; reading stops there). On a terminal
// it is read_hidden_line's prompt instead.
Result<SecureString> read_code_from_stdin();

}  // namespace mfa::ctl

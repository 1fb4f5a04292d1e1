// The two steps every ManagerBus method handler begins with (manager_calls.cpp and its siblings).
#pragma once

// Reads one argument; a malformed message returns its error, and sd-bus answers InvalidArgs.
#define MFA_READ(expr) \
  do {                 \
    int r_ = (expr);   \
    if (r_ < 0)        \
      return r_;       \
  } while (0)

// The call of m, or return: it was answered already (see ManagerBus::open_call).
#define MFA_CALL(call, m, bad)          \
  CallPtr call = open_call((m), (bad)); \
  if (!call)                            \
  return 1

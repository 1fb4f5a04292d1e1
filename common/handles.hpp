// RAII owners for C handles: unique_ptr with stateless deleters. Taking ownership is explicit at
// the call site (Owner<T>(raw)); adding a reference is too (Owner<T>(ref_fn(raw))).
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <memory>

namespace mfa {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    if (p)
      Fn(p);
  }
};

using BusPtr = std::unique_ptr<sd_bus, Deleter<sd_bus_flush_close_unref>>;
using BusMessagePtr = std::unique_ptr<sd_bus_message, Deleter<sd_bus_message_unref>>;
using BusSlotPtr = std::unique_ptr<sd_bus_slot, Deleter<sd_bus_slot_unref>>;
using BusCredsPtr = std::unique_ptr<sd_bus_creds, Deleter<sd_bus_creds_unref>>;
using EventPtr = std::unique_ptr<sd_event, Deleter<sd_event_unref>>;
using EventSourcePtr = std::unique_ptr<sd_event_source, Deleter<sd_event_source_disable_unref>>;

// A file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace mfa

// [Metrics] TextfilePath= (docs/operations.md, "Metrics"): the file node_exporter's textfile
// collector reads, rewritten every [Metrics] IntervalSeconds= on the event loop. Each write is
// atomic: a temporary file in the same directory, fsync, rename over the old one, so a reader
// sees the old file or the new one, never half of one.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/metrics.hpp"
#include "core/store.hpp"

namespace mfa {

class ManagerBus;

// Writes text to path atomically (mode 0644: the collector runs as another user).
Status write_file_atomically(const std::string& path, const std::string& text);

class MetricsFile {
 public:
  struct Deps {
    sd_event* event;
    Store& store;
    const ManagerBus& manager;
    std::string path;
    uint64_t interval_usec;
  };
  // Writes the file once and arms the timer.
  static Result<std::unique_ptr<MetricsFile>> start(Deps deps);
  // Feeds the counters (AuditLog's observer).
  void observe(const AuditEvent& event) { counters_.observe(event); }
  // Writes the file now; a failure is logged (once per kind of failure), never fatal.
  void write();

 private:
  explicit MetricsFile(Deps deps) : d_(std::move(deps)) {}
  static int on_timer(sd_event_source* source, uint64_t usec, void* userdata);

  Deps d_;
  MetricsCounters counters_;
  EventSourcePtr timer_;
  bool failing_ = false;
};

}  // namespace mfa

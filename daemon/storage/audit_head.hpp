// The audit trail's head kept outside the database (docs/audit-events.md, "The hash chain"):
// the newest row's id and link (its MAC) and the first kept row's id, sealed in a small file in
// the state directory. A copy of the database with its newest rows deleted still verifies as a
// chain; it no longer matches this file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "common/seal.hpp"

namespace mfa {

struct AuditHead {
  int64_t first_id = 0;  // the first row kept (after pruning); 0: the trail is empty
  int64_t last_id = 0;   // the newest row; 0: the trail is empty
  std::string mac;       // the newest row's hash_hex
  uint64_t rows() const {
    return last_id >= first_id && last_id > 0 ? static_cast<uint64_t>(last_id - first_id + 1) : 0;
  }
  bool operator==(const AuditHead&) const = default;
};

// The journal line (not secret: a MAC proves nothing without the key).
std::string describe_audit_head(const AuditHead& head);

// Writes head to path atomically: a temporary file beside it (O_CLOEXEC, mode 0600), written,
// fdatasync'd when durable, exchanged with path (the old head stays as the temporary file, whose
// inode the next write reuses), or renamed over it where there is none yet.
Status write_audit_head(const std::string& path, const Sealer& sealer, const AuditHead& head,
                        bool durable);
// nullopt when the file does not exist; kCrypto when it does not open (wrong key, changed bytes,
// not a head file); kIo when it cannot be read.
Result<std::optional<AuditHead>> read_audit_head(const std::string& path, const Sealer& sealer);

}  // namespace mfa

#include "bus/metrics_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bus/manager.hpp"
#include "core/log.hpp"

namespace mfa {

namespace {

Error io_error(const std::string& what, int err) {
  return make_error(Errc::kInternal, what + ": " + strerror(err));
}

}  // namespace

Status write_file_atomically(const std::string& path, const std::string& text) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
  std::string tmpl = path + ".XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  Fd fd(mkostemp(name.data(), O_CLOEXEC));
  if (!fd.valid())
    return io_error("cannot create a file in " + dir, errno);
  const std::string tmp(name.data());
  auto fail = [&](const std::string& what) {
    const int err = errno;
    (void)unlink(tmp.c_str());
    return io_error(what, err);
  };
  // node_exporter runs as its own user and reads the file.
  if (fchmod(fd.get(), 0644) < 0)
    return fail("cannot set the mode of " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail("cannot write " + tmp);
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) < 0)
    return fail("cannot sync " + tmp);
  if (::close(fd.release()) < 0)
    return fail("cannot close " + tmp);
  if (rename(tmp.c_str(), path.c_str()) < 0)
    return fail("cannot rename " + tmp + " to " + path);
  // The rename itself survives a crash once the directory is synced.
  Fd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid())
    (void)fsync(dir_fd.get());
  return {};
}

Result<std::unique_ptr<MetricsFile>> MetricsFile::start(Deps deps) {
  std::unique_ptr<MetricsFile> mf(new MetricsFile(std::move(deps)));
  mf->write();
  uint64_t now = 0;
  int r = sd_event_now(mf->d_.event, CLOCK_MONOTONIC, &now);
  sd_event_source* source = nullptr;
  if (r >= 0) {
    r = sd_event_add_time(mf->d_.event, &source, CLOCK_MONOTONIC, now + mf->d_.interval_usec,
                          100 * 1000, on_timer, mf.get());
  }
  mf->timer_.reset(source);
  if (r >= 0)
    r = sd_event_source_set_enabled(source, SD_EVENT_ON);
  if (r < 0)
    return make_error(Errc::kInternal,
                      std::string("cannot add the metrics timer: ") + strerror(-r));
  (void)sd_event_source_set_description(source, "metrics-file");
  return mf;
}

int MetricsFile::on_timer(sd_event_source* source, uint64_t usec, void* userdata) {
  auto* mf = static_cast<MetricsFile*>(userdata);
  try {
    mf->write();
  } catch (...) {
    MFA_LOG_ERROR("cannot write the metrics file");
  }
  (void)sd_event_source_set_time(source, usec + mf->d_.interval_usec);
  return 0;
}

void MetricsFile::write() {
  MetricsGauges g;
  g.degraded = d_.manager.degraded();
  auto users = d_.store.list_users();
  auto sessions = d_.store.list_sessions("");
  g.store_ok = users.ok() && sessions.ok();
  if (g.store_ok) {
    // Users with an active factor: a pending enrollment alone does not count.
    for (const auto& user : *users) {
      auto factors = d_.store.get_factors(user);
      auto backup = d_.store.count_backup_codes(user);
      bool active = backup.ok() && *backup > 0;
      if (factors.ok()) {
        for (const auto& f : *factors)
          active = active || !f.pending;
      }
      g.users_enrolled += active ? 1 : 0;
    }
    g.sessions_open = sessions->size();
  }
  Status st = write_file_atomically(d_.path, counters_.format(g));
  if (!st.ok() && !failing_)
    MFA_LOG_ERROR("metrics file %s: %s", d_.path.c_str(), st.error().message.c_str());
  else if (st.ok() && failing_)
    MFA_LOG_INFO("metrics file %s: written again", d_.path.c_str());
  failing_ = !st.ok();
}

}  // namespace mfa

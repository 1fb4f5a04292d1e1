// Whether a unix: Redis socket is Redis's own (fleet/unix_socket_check.hpp, docs/fleet.md
// "Transport"): the path's directories, the socket, and who listens on it. No server needed.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/handles.hpp"
#include "fleet/unix_socket_check.hpp"
// cmocka last: its fail() macro must not meet a standard header.
#include "cmocka_cpp.hpp"

using namespace mfa;

namespace {

struct Listener {
  std::string dir;
  std::string path;
  Fd fd;
  Listener() {
    char tmpl[] = "/tmp/mfa-sock-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    dir = tmpl;
    path = dir + "/redis.sock";
    fd = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    assert_int_equal(bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
    assert_int_equal(listen(fd.get(), 4), 0);
    assert_int_equal(chmod(path.c_str(), 0700), 0);
  }
  ~Listener() {
    unlink(path.c_str());
    rmdir(dir.c_str());
  }
  Fd connect_to() const {
    Fd c(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    assert_int_equal(connect(c.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0);
    return c;
  }
};

std::vector<uid_t> owners() {
  return {0, geteuid()};
}

void assert_refused(const Status& s, const char* part) {
  assert_false(s.ok());
  if (strstr(s.error().message.c_str(), part) == nullptr)
    fprintf(stderr, "message: %s\n", s.error().message.c_str());
  assert_non_null(strstr(s.error().message.c_str(), part));
}

void test_redis_own_socket_passes(void** /*state*/) {
  Listener l;
  assert_true(check_redis_socket_path(l.path, owners()).ok());
  Fd c = l.connect_to();
  assert_true(check_redis_socket_peer(c.get(), l.path, owners()).ok());
}

void test_a_directory_others_can_write_is_refused(void** /*state*/) {
  Listener l;
  assert_int_equal(chmod(l.dir.c_str(), 0777), 0);
  assert_refused(check_redis_socket_path(l.path, owners()), "is writable by group or others");
  // The sticky bit does not make the socket's own directory safe (the name is free while Redis
  // is down).
  assert_int_equal(chmod(l.dir.c_str(), 01777), 0);
  assert_refused(check_redis_socket_path(l.path, owners()), "is writable by group or others");
  assert_int_equal(chmod(l.dir.c_str(), 0755), 0);
  assert_true(check_redis_socket_path(l.path, owners()).ok());
}

void test_a_socket_others_can_connect_to_is_refused(void** /*state*/) {
  Listener l;
  assert_int_equal(chmod(l.path.c_str(), 0777), 0);
  assert_refused(check_redis_socket_path(l.path, owners()), "any local user may connect to it");
  assert_int_equal(chmod(l.path.c_str(), 0770), 0);
  assert_true(check_redis_socket_path(l.path, owners()).ok());
}

void test_symbolic_links_are_refused(void** /*state*/) {
  Listener l;
  const std::string link_dir = l.dir + "-link";
  assert_int_equal(symlink(l.dir.c_str(), link_dir.c_str()), 0);
  assert_refused(check_redis_socket_path(link_dir + "/redis.sock", owners()),
                 "is a symbolic link: write the path it leads to");
  unlink(link_dir.c_str());
  const std::string link_sock = l.dir + "/link.sock";
  assert_int_equal(symlink(l.path.c_str(), link_sock.c_str()), 0);
  assert_refused(check_redis_socket_path(link_sock, owners()), "is a symbolic link");
  unlink(link_sock.c_str());
}

void test_not_a_socket_or_missing(void** /*state*/) {
  Listener l;
  const std::string file = l.dir + "/file";
  FILE* f = fopen(file.c_str(), "w");
  assert_non_null(f);
  fclose(f);
  assert_refused(check_redis_socket_path(file, owners()), "is not a socket");
  unlink(file.c_str());
  assert_refused(check_redis_socket_path(l.dir + "/none.sock", owners()), "No such file");
}

void test_owners_are_checked(void** /*state*/) {
  Listener l;
  const uid_t stranger = 54321;
  if (geteuid() == 0) {
    assert_int_equal(chown(l.path.c_str(), stranger, stranger), 0);
    assert_refused(check_redis_socket_path(l.path, owners()),
                   "is owned by uid 54321, not by root or the redis user");
    assert_int_equal(chown(l.path.c_str(), 0, 0), 0);
    assert_int_equal(chown(l.dir.c_str(), stranger, stranger), 0);
    assert_refused(check_redis_socket_path(l.path, owners()), "is owned by uid 54321");
    assert_int_equal(chown(l.dir.c_str(), 0, 0), 0);
  }
  // The listener: a process of a user that is not trusted is not Redis, whatever the file says.
  Fd c = l.connect_to();
  assert_refused(check_redis_socket_peer(c.get(), l.path, {stranger}),
                 "the process listening on it runs as uid");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_redis_own_socket_passes),
      cmocka_unit_test(test_a_directory_others_can_write_is_refused),
      cmocka_unit_test(test_a_socket_others_can_connect_to_is_refused),
      cmocka_unit_test(test_symbolic_links_are_refused),
      cmocka_unit_test(test_not_a_socket_or_missing),
      cmocka_unit_test(test_owners_are_checked),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// The session leader's start time read from /proc/PID/stat (bus/sessions.hpp), which tells a live
// leader from a process that got its pid later. It must be field 22 (starttime), a constant of the
// process: a field that changes while the leader lives (field 23, vsize, grows with every thread
// or mapping) makes mfad take its own session's leader for a stranger, close the session behind
// its back (a later CloseSession is NoSuchSession) and never signal that leader on
// TerminateSession.
#include <sys/mman.h>

#include <fstream>
#include <iterator>
#include <string>

#include "bus/sessions.hpp"
#include "cmocka_cpp.hpp"

using namespace mfa;

namespace {

// A real line (of cat) with fields 22 (starttime) = 4105798 and 23 (vsize) = 3133440, its comm
// made hard: spaces and parentheses.
constexpr char kStat[] =
    "26653 (a) b (c) R 26651 26651 17559 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 4105798 3133440 "
    "390 18446744073709551615 94402970808320 94402970828201 140721011696496 0 0 0 0 0 0 0 0 0 17 1 "
    "0 0 0 0 0 94402970844208 94402970845824 94403852636160 140721011698294 140721011698314 "
    "140721011698314 140721011699691 0\n";

std::string read_self_stat() {
  std::ifstream in("/proc/self/stat");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void test_the_start_time_is_field_22(void** /*state*/) {
  assert_int_equal(proc_stat_start_time(kStat), 4105798);
}

void test_a_line_without_it_is_zero(void** /*state*/) {
  assert_int_equal(proc_stat_start_time(""), 0);
  assert_int_equal(proc_stat_start_time("26653 (cat R 26651"), 0);               // no ')'
  assert_int_equal(proc_stat_start_time("26653 (cat) R 26651 26651 17559"), 0);  // cut short
  assert_int_equal(proc_stat_start_time("1 (x) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 12z 5\n"), 0);
}

// The leader's start time stays what it was when the session opened, however its memory grows.
void test_a_live_process_keeps_its_start_time(void** /*state*/) {
  const uint64_t before = proc_stat_start_time(read_self_stat());
  assert_true(before != 0);
  const size_t size = 256u << 20;
  void* grown = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(grown != MAP_FAILED);
  const uint64_t after = proc_stat_start_time(read_self_stat());
  munmap(grown, size);
  assert_int_equal(after, before);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_the_start_time_is_field_22),
      cmocka_unit_test(test_a_line_without_it_is_zero),
      cmocka_unit_test(test_a_live_process_keeps_its_start_time),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

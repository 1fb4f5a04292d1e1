// Secrets leave no copies in freed memory: every heap block is scanned for a marker just before
// it is freed (operator delete replaced in this test binary only).
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "common/secure_buffer.hpp"
#include "cmocka_cpp.hpp"

namespace {

constexpr char kMarker[] = "s3cr3t-m4rk3r";
bool g_scanning = false;
int g_leaks = 0;

void scan(void* p) {
  if (!g_scanning || !p)
    return;
  const size_t n = malloc_usable_size(p);
  if (memmem(p, n, kMarker, sizeof kMarker - 1) != nullptr)
    ++g_leaks;
}

}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p)
    throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept {
  scan(p);
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  scan(p);
  std::free(p);
}

namespace {

void start() {
  g_leaks = 0;
  g_scanning = true;
}
int stop() {
  g_scanning = false;
  return g_leaks;
}

void test_scanner_detects_plain_string(void**) {
  // The check itself can fail: a std::string that grows leaves the marker in freed blocks.
  start();
  {
    std::string plain(kMarker);
    for (int i = 0; i < 50; ++i)
      plain.append("0123456789abcdef");
  }
  assert_true(stop() > 0);
}

void test_append_leaves_no_copies(void**) {
  start();
  {
    mfa::SecureString s;
    s.append(kMarker);
    for (int i = 0; i < 50; ++i)
      s.append("0123456789abcdef");
    mfa::SecureString t(kMarker);  // short: inside the object (SSO)
    mfa::SecureString u(std::move(t));
    mfa::SecureString v;
    v = std::move(s);
    v = std::move(u);
    v.append(kMarker);
    v.clear();
    v.append(kMarker);
  }
  assert_int_equal(stop(), 0);
}

void test_bytes_leave_no_copies(void**) {
  start();
  {
    mfa::SecureBytes a(std::span(reinterpret_cast<const uint8_t*>(kMarker), sizeof kMarker));
    mfa::SecureBytes b = a.clone();
    mfa::SecureBytes c(std::move(a));
    c = std::move(b);
    c.clear();
  }
  assert_int_equal(stop(), 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scanner_detects_plain_string),
      cmocka_unit_test(test_append_leaves_no_copies),
      cmocka_unit_test(test_bytes_leave_no_copies),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

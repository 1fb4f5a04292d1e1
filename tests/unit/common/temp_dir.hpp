// A directory under /tmp for one test, removed with everything in it when the test is done.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <string>

#include "cmocka_cpp.hpp"

namespace mfa::test {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/mfa-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    path = tmpl;
  }
  // Not std::filesystem: <filesystem> cannot follow cmocka.h, whose fail() is a macro.
  ~TempDir() {
    const std::string cmd = "rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0)
      std::abort();
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const char* name) const { return path + "/" + name; }
};

}  // namespace mfa::test

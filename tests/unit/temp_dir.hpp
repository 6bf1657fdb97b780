// tests/unit/temp_dir.hpp — a fresh directory under /tmp for one test, removed afterwards.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace bus::test {

struct TempDir {
  explicit TempDir(const char* prefix = "bus-test") {
    std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

}  // namespace bus::test

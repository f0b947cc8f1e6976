// Helpers shared by the C++ test suites: where the repository is, whole-file reads, test
// data, and removal of the temporary trees tests make.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace millpond::testing {

// The repository root: $MILLPOND_REPO_ROOT, else the source tree the test was built from
// (CMakeLists.txt defines MILLPOND_SOURCE_DIR for every test).
inline std::string RepoRoot() {
  if (const char* env = std::getenv("MILLPOND_REPO_ROOT")) return env;
  return MILLPOND_SOURCE_DIR;
}

// The whole file as bytes ("" when it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// n pseudo-random bytes, the same for the same seed.
inline std::string Pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Sends sig to a child process. For SIGSTOP it returns only once every thread of the child has
// stopped: kill() merely queues the signal, and a thread already running on another core can
// still answer a request sent right after it.
inline void SignalChild(pid_t pid, int sig) {
  if (pid <= 0) return;
  ::kill(pid, sig);
  int status;
  if (sig == SIGSTOP) ::waitpid(pid, &status, WUNTRACED);
}

inline void RemoveTree(const std::string& path) {
  if (DIR* d = ::opendir(path.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
      std::string p = path + "/" + e->d_name;
      struct stat st;
      if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) RemoveTree(p);
      else ::unlink(p.c_str());
    }
    ::closedir(d);
  }
  ::rmdir(path.c_str());
}

}  // namespace millpond::testing

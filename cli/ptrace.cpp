// ptrace and /proc helpers: see ptrace.h.
#include "cli/ptrace.h"

#include <dirent.h>
#include <time.h>

#include <cstdio>
#include <fstream>

namespace leakscope::inject {

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void sleep_ms(int ms) {
  timespec ts{ms / 1000, static_cast<long>(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

std::vector<Mapping> read_maps(pid_t pid) {
  std::vector<Mapping> out;
  std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(f, line)) {
    Mapping m{};
    char perms[8] = {};
    unsigned long long lo = 0, hi = 0, off = 0;
    int pos = 0;
    if (sscanf(line.c_str(), "%llx-%llx %7s %llx %*s %*s%n", &lo, &hi, perms, &off, &pos) < 4) continue;
    m.lo = lo;
    m.hi = hi;
    m.offset = off;
    m.perms = perms;
    std::string rest = line.substr(static_cast<size_t>(pos));
    size_t s = rest.find_first_not_of(' ');
    m.path = s == std::string::npos ? "" : rest.substr(s);
    out.push_back(m);
  }
  return out;
}

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> out{pid};
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      long tid = strtol(e->d_name, nullptr, 10);
      if (tid > 0 && tid != pid) out.push_back(static_cast<pid_t>(tid));
    }
    closedir(d);
  }
  return out;
}

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      size_t s = v.find_first_not_of(" \t");
      return s == std::string::npos ? "" : v.substr(s);
    }
  return "";
}

}  // namespace leakscope::inject

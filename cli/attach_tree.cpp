// See attach_tree.h.
#include "cli/attach_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "cli/control_client.h"
#include "cli/inject.h"

namespace leakscope::cli {

namespace {

std::vector<long> children_of(long pid) {
  std::vector<long> out;
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(task.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (FILE* f = fopen((task + "/" + e->d_name + "/children").c_str(), "re")) {
      long c;
      while (fscanf(f, "%ld", &c) == 1) out.push_back(c);
      fclose(f);
    }
  }
  closedir(d);
  return out;
}

std::string base_of(const std::string& path) {
  size_t s = path.rfind('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

// STEM.PID.lsc beside the root capture, created O_EXCL 0600 (handed to the process's owner
// when root attaches to another user's process, as for the root's capture).
std::string create_capture(const std::string& root_capture, long pid) {
  std::string stem = root_capture;
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".lsc") == 0) stem.resize(stem.size() - 4);
  for (int i = 1; i <= 16; ++i) {
    std::string path = stem + "." + std::to_string(pid) + (i == 1 ? "" : "-" + std::to_string(i)) + ".lsc";
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return "";
    }
    struct stat ps;
    if (geteuid() == 0 && stat(("/proc/" + std::to_string(pid)).c_str(), &ps) == 0 && ps.st_uid != 0) {
      if (fchown(fd, ps.st_uid, ps.st_gid) != 0) {
      }
    }
    close(fd);
    return path;
  }
  return "";
}

}  // namespace

std::vector<std::pair<long, long>> descendants(long pid, size_t limit) {
  std::vector<std::pair<long, long>> out;
  std::set<long> seen{pid};
  std::deque<long> todo{pid};
  while (!todo.empty() && out.size() < limit) {
    long p = todo.front();
    todo.pop_front();
    for (long c : children_of(p)) {
      if (!seen.insert(c).second || out.size() >= limit) continue;
      out.emplace_back(c, p);
      todo.push_back(c);
    }
  }
  return out;
}

int attach_descendants(long root_pid, const std::string& root_capture, const std::string& agent,
                       const std::string& base_cfg, bool quiet) {
  std::map<long, std::string> capture_of{{root_pid, root_capture}};
  int attached = 0;
  for (const auto& [pid, parent] : descendants(root_pid, 4096)) {
    auto pc = capture_of.find(parent);
    if (pc == capture_of.end()) continue;  // its parent could not be attached: neither is it
    std::string reply;
    if (control_request(pid, "status\n", 2000, &reply)) continue;  // already tracked (a followed fork)
    const std::string path = create_capture(root_capture, pid);
    if (path.empty()) {
      fprintf(stderr, "leakscope: warning: cannot create a capture for process %ld (%s)\n", pid, strerror(errno));
      continue;
    }
    const std::string cfg = base_cfg + "output=" + path + "\ntree_root=" + root_capture + "\nparent_capture=" +
                            base_of(pc->second) + "\nparent_pid=" + std::to_string(parent) + "\n";
    inject::Result r = inject::attach(static_cast<pid_t>(pid), agent, cfg);
    if (!r.ok) {
      struct stat st;
      if (stat(path.c_str(), &st) == 0 && st.st_size == 0) unlink(path.c_str());
      fprintf(stderr, "leakscope: warning: cannot attach to process %ld, a child of %ld: %s\n", pid, parent,
              r.error.c_str());
      continue;
    }
    capture_of[pid] = path;
    ++attached;
    if (!quiet) printf("leakscope: attached to process %ld (a child of %ld) in %.3f s; capture %s\n", pid, parent,
                       r.seconds, path.c_str());
  }
  return attached;
}

int detach_descendants(long pid, bool quiet) {
  int detached = 0;
  for (const auto& [c, parent] : descendants(pid, 4096)) {
    std::string reply;
    if (!control_request(c, "status\n", 2000, &reply) || reply.rfind("attached ", 0) != 0) continue;
    if (control_request(c, "detach\n", 30000, &reply) && reply.rfind("ok ", 0) == 0) {
      ++detached;
      if (!quiet) printf("leakscope: detached from process %ld (a child of %ld)\n", c, parent);
    } else {
      fprintf(stderr, "leakscope: warning: cannot detach from process %ld: %s\n", c, reply.c_str());
    }
  }
  return detached;
}

}  // namespace leakscope::cli

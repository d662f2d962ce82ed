// run --follow-fork (docs/process-trees.md): a forked child writes a capture of its own beside
// the root's, continuing its parent's definitions instead of repeating them. Runs in the
// pthread_atfork child handler: only the forking thread exists, the definition and native
// locks are held (taken in prepare), nothing here may wait for another thread.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "agent/agent.h"
#include "agent/aggregate.h"
#include "agent/asyncio_tasks.h"

namespace leakscope::agent {

bool g_follow_fork = false;
uint32_t g_max_processes = 1000;

namespace {
char g_tree_root[4096];                           // the root capture's path (inherited by forks)
std::atomic<uint32_t>* g_tree_count = nullptr;    // captures in the tree: a page shared by forks
uint32_t g_fork_defs[3];                          // frames, stack nodes, code objects at the fork
bool g_fork_noted = false;
char g_opt_tree_root[4096], g_opt_parent_capture[256], g_opt_parent_pid[24];  // options (attach --children, exec)
bool g_followed_child = false;  // this process is a followed fork child (not the tree's root)
}  // namespace



void follow_fork_option(const char* key, const char* value) {
  if (!key) {
    g_opt_tree_root[0] = g_opt_parent_capture[0] = g_opt_parent_pid[0] = 0;
    return;
  }
  if (strcmp(key, "tree_root") == 0) snprintf(g_opt_tree_root, sizeof g_opt_tree_root, "%s", value);
  else if (strcmp(key, "parent_capture") == 0 && !strchr(value, '/')) snprintf(g_opt_parent_capture, sizeof g_opt_parent_capture, "%.255s", value);
  else if (strcmp(key, "parent_pid") == 0) snprintf(g_opt_parent_pid, sizeof g_opt_parent_pid, "%.20s", value);
}

namespace {
// STEM.PID.lsc beside the root (STEM: the root's path without ".lsc"); STEM.PID-N.lsc when a
// reused pid finds its name taken. O_EXCL, 0600, no link followed.
int create_child_capture(char* path, size_t room) {
  char stem[4096];
  snprintf(stem, sizeof stem, "%s", g_tree_root);
  size_t n = strlen(stem);
  if (n > 4 && strcmp(stem + n - 4, ".lsc") == 0) stem[n - 4] = 0;
  const int pid = static_cast<int>(getpid());
  for (int i = 1; i <= 16; ++i) {
    int k = i == 1 ? snprintf(path, room, "%.4000s.%d.lsc", stem, pid)
                   : snprintf(path, room, "%.4000s.%d-%d.lsc", stem, pid, i);
    if (k < 0 || static_cast<size_t>(k) >= room) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}
}  // namespace

unsigned follow_fork_budget() {
  const uint32_t used = g_tree_count ? g_tree_count->load() : 1;
  return used < g_max_processes ? g_max_processes - used : 1;
}

const char* follow_fork_tree_root() { return g_tree_root; }

bool follow_fork_count_one() {
  if (!g_follow_fork || !g_aggregate || !g_tree_count || !g_enabled.load(std::memory_order_relaxed)) return false;
  return g_tree_count->fetch_add(1) + 1 <= g_max_processes;
}

bool follow_fork_vfork_child() {
  // A vfork (or raw clone) child of a followed process: no atfork handler ran, so it neither
  // owns the capture nor was turned off. Counted in the tree's shared page (shared anyway).
  if (!g_follow_fork || !g_aggregate || g_forked_child || !g_tree_count || !g_enabled.load(std::memory_order_relaxed) ||
      getpid() == g_owner_pid)
    return false;
  return g_tree_count->fetch_add(1) + 1 <= g_max_processes;
}

bool follow_fork_exec_parent(bool tree_child, char* parent, size_t plen, char* ppid, size_t pidlen) {
  if (tree_child) {
    const char* slash = strrchr(g_output_path, '/');
    snprintf(parent, plen, "%.255s", slash ? slash + 1 : g_output_path);
    snprintf(ppid, pidlen, "%ld", static_cast<long>(g_owner_pid));
    return true;
  }
  if (!g_opt_parent_capture[0]) return false;  // the root: no parent
  snprintf(parent, plen, "%s", g_opt_parent_capture);
  snprintf(ppid, pidlen, "%s", g_opt_parent_pid);
  return true;
}

bool follow_fork_exec_child_output() {
  if (!g_opt_tree_root[0]) return false;
  snprintf(g_tree_root, sizeof g_tree_root, "%s", g_opt_tree_root);
  char path[sizeof g_output_path];
  int fd = create_child_capture(path, sizeof path);
  if (fd < 0) return false;
  close(fd);
  snprintf(g_output_path, sizeof g_output_path, "%s", path);
  return true;
}

void follow_fork_started() {
  if (g_opt_parent_capture[0]) {  // an attached descendant: its place in the tree
    defs_lock();
    emit_info("parent_capture", g_opt_parent_capture, strlen(g_opt_parent_capture));
    if (g_opt_parent_pid[0]) emit_info("parent_pid", g_opt_parent_pid, strlen(g_opt_parent_pid));
    defs_unlock();
  }
  if (!g_follow_fork) return;
  snprintf(g_tree_root, sizeof g_tree_root, "%s", g_opt_tree_root[0] ? g_opt_tree_root : g_output_path);
  if (!g_tree_count) {
    void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) g_tree_count = new (m) std::atomic<uint32_t>(1);
  }
}

void follow_fork_prepare_locked() {
  // Aggregate mode only: in events mode the child's rings hold the parent's delta state.
  g_fork_noted = g_follow_fork && g_aggregate && g_tree_count && owns_capture() && g_enabled.load();
  if (g_fork_noted) {
    stacks_counts(&g_fork_defs[0], &g_fork_defs[1], &g_fork_defs[2]);
    writer_consume_lock();  // released by follow_fork_after_locked, in the parent and the child
    // Every event made before the fork applied now: the child starts from the exact state it
    // inherits (inherited_bytes), and the parent loses nothing.
    writer_consume_all_locked();
  }
}

void follow_fork_after_locked() {
  if (g_fork_noted) writer_consume_unlock();
}


bool follow_fork_child_locked() {
  if (!g_fork_noted) return false;
  g_fork_noted = false;
  writer_consume_unlock();
  if (g_tree_count->fetch_add(1) + 1 > g_max_processes) return false;  // past the bound: untracked
  char path[sizeof g_output_path];
  int fd = create_child_capture(path, sizeof path);
  if (fd < 0) return false;
  if (!write_capture_header(fd, capture::kFlagForkedChild)) {
    close(fd);
    unlink(path);
    return false;
  }
  char parent[256];
  const char* slash = strrchr(g_output_path, '/');
  snprintf(parent, sizeof parent, "%.255s", slash ? slash + 1 : g_output_path);  // a file name: <= 255
  const long parent_pid = static_cast<long>(g_owner_pid);
  // Kept for an exec of this child: its new image is still this parent's child in the tree.
  snprintf(g_opt_parent_capture, sizeof g_opt_parent_capture, "%s", parent);
  snprintf(g_opt_parent_pid, sizeof g_opt_parent_pid, "%ld", parent_pid);
  g_owner_pid = getpid();
  g_start_ns = now_ns();
  snprintf(g_output_path, sizeof g_output_path, "%s", path);
  // A child's exit must stay quick (pools fork and reap many): no object-graph walk, no
  // reachability check (that one talks to `run`, which waits for the root only).
  g_retention = false;
  g_findleaks = false;
  g_followed_child = true;
  sampling_after_fork_child();
  stacks_after_fork_child();
  gc_view_after_fork_child();
  patch_after_fork_child();
  writer_start_in_fork_child(fd);
  emit_info("parent_capture", parent, strlen(parent));
  char num[96];
  int k = snprintf(num, sizeof num, "%ld", parent_pid);
  emit_info("parent_pid", num, static_cast<size_t>(k));
  k = snprintf(num, sizeof num, "%u %u %u", g_fork_defs[0], g_fork_defs[1], g_fork_defs[2]);
  emit_info("parent_defs", num, static_cast<size_t>(k));
  emit_start_info_locked();
  if (g_python_version[0]) emit_info("python_version", g_python_version, strlen(g_python_version));
  // What the child holds from its parent at the fork (its first snapshot lists where).
  k = snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(aggregate_live_bytes()));
  emit_info("inherited_bytes", num, static_cast<size_t>(k));
  aggregate_after_fork_child();
  tasks_after_fork_child();
  writer_run_in_fork_child();
  return true;
}

namespace {
void note_child_end(pid_t pid, const char* how, int n) {
  if (!g_follow_fork || pid <= 0 || !owns_capture() || !g_enabled.load(std::memory_order_relaxed) || t_in_hook) return;
  HookGuard g;
  char key[48], value[32];
  snprintf(key, sizeof key, "child_exit %d", static_cast<int>(pid));
  int k = snprintf(value, sizeof value, "%s %d", how, n);
  defs_lock();
  emit_info(key, value, static_cast<size_t>(k));
  defs_unlock();
}
void note_status(pid_t pid, const int* status) {
  if (pid <= 0 || !status) return;
  if (WIFEXITED(*status)) note_child_end(pid, "exit", WEXITSTATUS(*status));
  else if (WIFSIGNALED(*status)) note_child_end(pid, "signal", WTERMSIG(*status));
}
}  // namespace

pid_t h_waitpid(pid_t pid, int* status, int options) {
  int st = 0;
  pid_t r = waitpid(pid, status ? status : &st, options);
  note_status(r, status ? status : &st);
  return r;
}
pid_t h_wait(int* status) { return h_waitpid(-1, status, 0); }
pid_t h_wait4(pid_t pid, int* status, int options, struct rusage* ru) {
  int st = 0;
  pid_t r = wait4(pid, status ? status : &st, options, ru);
  note_status(r, status ? status : &st);
  return r;
}
int h_waitid(idtype_t idtype, id_t id, siginfo_t* info, int options) {
  int r = waitid(idtype, id, info, options);
  // WNOWAIT leaves the child to be waited for again: its end is noted when it is reaped.
  if (r == 0 && info && info->si_pid > 0 && !(options & WNOWAIT)) {
    if (info->si_code == CLD_EXITED) note_child_end(info->si_pid, "exit", info->si_status);
    else if (info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED) note_child_end(info->si_pid, "signal", info->si_status);
  }
  return r;
}

}  // namespace leakscope::agent

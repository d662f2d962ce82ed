// Agent entry: the constructor reads its configuration from LEAKSCOPE_* variables (set by
// `leakscope run`), removes them and its LD_PRELOAD entry from the environment so the program
// and anything it execs never see them, takes the real allocator from libc, opens the capture,
// starts the writer thread and patches every loaded module. Fork: the child is left alone
// (tracking off, capture closed); locks are taken around fork so none is inherited held.
#include <dlfcn.h>
#include <malloc.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/agent.h"
#include "agent/option_list.h"
#include "agent/aggregate.h"

namespace leakscope::agent {

RealFns g_real;
std::atomic<bool> g_enabled{false};
// Options: set by reset_options() and apply_option() before tracking starts.
bool g_native = false;
uint64_t g_start_ns = 0;
int g_zstd_level = 0;
uint64_t g_interval_ns = 0;
uint64_t g_sample_rate = 0;
uint64_t g_full_res_ns = 0;
uint64_t g_compact_min_bytes = 0;
bool g_aggregate = false;
bool g_forked_child = false;
bool g_attached = false;
uint64_t g_detach_at_ns = 0;
pid_t g_owner_pid = 0;

bool owns_capture() { return !g_forked_child && getpid() == g_owner_pid; }
char g_agent_path[4096];
char g_output_path[4096];
constinit thread_local bool t_in_hook = false;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {
bool g_active = false;

void say(const char* text) {
  size_t n = strlen(text);
  ssize_t w = write(2, text, n);
  if (w >= 0 && (n == 0 || text[n - 1] != '\n')) w = write(2, "\n", 1);
  (void)w;
}

bool resolve_real() {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (!libc) return false;
#define LSP_REAL_(symbol) g_real.symbol = reinterpret_cast<decltype(g_real.symbol)>(dlsym(libc, #symbol));
  LSP_REAL_FNS(LSP_REAL_)
#undef LSP_REAL_
  leakscope_dlsym_real_ptr = reinterpret_cast<void*>(g_real.dlsym);
  return g_real.malloc && g_real.free && g_real.calloc && g_real.realloc && g_real.mmap && g_real.munmap &&
         g_real.mremap && g_real.dlopen && g_real.dlsym && g_real._exit && g_real.malloc_usable_size;
}

// The environment is read and edited through `environ` itself, never getenv/unsetenv: a
// program may define its own (bash does, and they ignore `environ` until its main runs, so
// bash exported our variables to every child it started).
const char* env_get(const char* name) {
  size_t n = strlen(name);
  for (char** e = environ; e && *e; ++e)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return nullptr;
}

// The tracking options (agent/option_list.h), one parser for both ways in: `run` passes them
// as LEAKSCOPE_* variables (the exec hooks pass them on), `attach` as "key=value" lines.
using options::kTrackOptions;
constexpr size_t kOptions = sizeof kTrackOptions / sizeof kTrackOptions[0];
constexpr size_t kOptionText = 40;  // a number as `run` writes it, a choice
char g_option_text[kOptions][kOptionText];  // what apply_option accepted, for the exec hooks

void apply_option(const char* key, const char* value);

void reset_options() {
  for (const options::Option& o : kTrackOptions)
    if (o.kind != options::Kind::kText) apply_option(o.key, o.def);
  g_detach_at_ns = 0;
  g_findleaks = false;
  g_findleaks_name[0] = 0;
  follow_fork_option(nullptr, nullptr);
}

// A value outside its option's range or choices (option_list.h) is ignored: the default stays.
void apply_option(const char* key, const char* value) {
  if (const options::Option* o = options::find_option(key)) {
    if (!options::valid_value(*o, value)) return;
    if (o->pass_on) snprintf(g_option_text[o - kTrackOptions], kOptionText, "%s", value);
  }
  if (strcmp(key, "output") == 0) snprintf(g_output_path, sizeof g_output_path, "%s", value);
  else if (strcmp(key, "native") == 0) g_native = strcmp(value, "1") == 0;
  else if (strcmp(key, "zstd_level") == 0) g_zstd_level = atoi(value);
  else if (strcmp(key, "interval") == 0) g_interval_ns = static_cast<uint64_t>(strtod(value, nullptr) * 1e9);
  else if (strcmp(key, "sample_rate") == 0) g_sample_rate = strtoull(value, nullptr, 10);
  else if (strcmp(key, "mode") == 0) g_aggregate = strcmp(value, "events") != 0;
  else if (strcmp(key, "full_resolution") == 0) g_full_res_ns = static_cast<uint64_t>(strtod(value, nullptr) * 1e9);
  else if (strcmp(key, "thin_at") == 0) g_compact_min_bytes = strtoull(value, nullptr, 10);
  else if (strcmp(key, "findleaks") == 0) {
    // The name of the `run` process's abstract socket (docs/findleaks.md); only `run` sets it.
    snprintf(g_findleaks_name, sizeof g_findleaks_name, "%s", value);
    g_findleaks = g_findleaks_name[0] != 0;
  } else if (strcmp(key, "retention") == 0) {
    g_retention = strcmp(value, "0") != 0;
  } else if (strcmp(key, "follow_fork") == 0) {
    g_follow_fork = strcmp(value, "1") == 0;
  } else if (strcmp(key, "tree_root") == 0 || strcmp(key, "parent_capture") == 0 || strcmp(key, "parent_pid") == 0) {
    follow_fork_option(key, value);  // attach --children (agent/fork_follow.cpp)
  } else if (strcmp(key, "max_processes") == 0) {
    g_max_processes = static_cast<uint32_t>(strtoull(value, nullptr, 10));
  } else if (strcmp(key, "duration") == 0) {
    double s = strtod(value, nullptr);
    g_detach_at_ns = s > 0 ? now_ns() + static_cast<uint64_t>(s * 1e9) : 0;
  }
}

}  // namespace

const char* option_text_to_pass_on(size_t i) {
  return i < kOptions && kTrackOptions[i].pass_on && g_option_text[i][0] ? g_option_text[i] : nullptr;
}

// Only the variables `run` and the exec hooks set: a user's own LEAKSCOPE_SOMETHING stays.
bool is_agent_var(const char* entry) {
  static const char* const kVars[] = {"LEAKSCOPE_OUTPUT", "LEAKSCOPE_PID", "LEAKSCOPE_ORIG_LD_PRELOAD",
                                      "LEAKSCOPE_EXEC"};
  if (strncmp(entry, "LEAKSCOPE_", 10) != 0) return false;
  auto is = [entry](const char* v) {
    size_t n = strlen(v);
    return strncmp(entry, v, n) == 0 && entry[n] == '=';
  };
  for (const char* v : kVars)
    if (is(v)) return true;
  for (const options::Option& o : kTrackOptions)
    if (is(o.env)) return true;
  return false;
}

namespace {
// Removes our LEAKSCOPE_* variables and restores LD_PRELOAD to what the user had (saved by `run`), in place
// (as glibc's unsetenv does), so main's envp sees the same. Values already read stay valid.
void scrub_environment() {
  static char preload[8192];
  const char* orig = env_get("LEAKSCOPE_ORIG_LD_PRELOAD");
  char** w = environ;
  for (char** r = environ; r && *r; ++r) {
    if (is_agent_var(*r)) continue;
    if (strncmp(*r, "LD_PRELOAD=", 11) == 0) {
      int n = orig && *orig ? snprintf(preload, sizeof preload, "LD_PRELOAD=%s", orig) : -1;
      if (n > 0 && static_cast<size_t>(n) < sizeof preload) *w++ = preload;
      continue;
    }
    *w++ = *r;
  }
  if (w) *w = nullptr;
}


void on_libc_exit() {
  ScanRequester r;
  capture_requester(&r);
  agent_stop("exit", &r);
}
bool start_tracking(bool after_exec, char* why, size_t whylen);

bool g_prev_in_hook_at_fork = false;
bool g_parked_for_fork = false;
PyFramePosition g_fork_frame;
bool g_have_fork_frame = false;
void fork_prepare() {
  g_prev_in_hook_at_fork = t_in_hook;
  t_in_hook = true;
  g_parked_for_fork = false;
  if (owns_capture() && g_py_state.load() == PyState::kInstalled && g_py.minor >= 12) {
    g_have_fork_frame = python_gil_frame(&g_fork_frame);
    writer_park();
    g_parked_for_fork = true;
  }
  defs_lock();
  native_lock();
  follow_fork_prepare_locked();
}
void fork_parent() {
  follow_fork_after_locked();
  native_unlock();
  defs_unlock();
  if (g_parked_for_fork) writer_unpark_later(g_have_fork_frame ? &g_fork_frame : nullptr);
  t_in_hook = g_prev_in_hook_at_fork;
}
void fork_child() {
  if (!follow_fork_child_locked()) {  // not followed: left alone
    g_forked_child = true;
    g_enabled.store(false);
    writer_after_fork_child();
  }
  native_unlock();
  defs_unlock();
  t_in_hook = g_prev_in_hook_at_fork;
}

__attribute__((constructor(101))) void agent_init() {
  const char* out = env_get("LEAKSCOPE_OUTPUT");
  if (!out || !*out) return;  // loaded without `leakscope run`: stay inert
  // Only the process `run` started (and the images it execs, which keep its pid) writes the
  // capture; anything else that inherited our variables stays inert and passes them on to nobody.
  const char* owner = env_get("LEAKSCOPE_PID");
  // "0": the new image of a vfork child of a --follow-fork process, a new member of the tree.
  const bool tree_member = owner && strcmp(owner, "0") == 0;
  if (!owner || (!tree_member && strtoll(owner, nullptr, 10) != static_cast<long long>(getpid()))) {
    scrub_environment();
    return;
  }
  snprintf(g_output_path, sizeof g_output_path, "%s", out);
  bool after_exec = env_get("LEAKSCOPE_EXEC") != nullptr;
  {
    Dl_info di;
    if (dladdr(reinterpret_cast<void*>(&say), &di) && di.dli_fname) snprintf(g_agent_path, sizeof g_agent_path, "%s", di.dli_fname);
  }
  reset_options();
  for (const options::Option& o : kTrackOptions)
    if (const char* v = env_get(o.env)) apply_option(o.key, v);
  scrub_environment();
  if (tree_member && !follow_fork_exec_child_output()) return;  // no name free: untracked
  char why[4400];
  if (!start_tracking(after_exec, why, sizeof why)) say(why);
}

}  // namespace

void emit_info(const char* key, const char* value, size_t vlen) {
  uint8_t rec[8192];
  if (vlen > 8000) vlen = 8000;
  uint8_t* p = rec;
  *p++ = capture::kInfo;
  p = capture::put_bytes(p, key, strlen(key));
  p = capture::put_bytes(p, value, vlen);
  emit_def_locked(rec, static_cast<size_t>(p - rec));
}

bool write_capture_header(int fd, uint32_t extra_flags) {
  capture::FileHeader h{};
  memcpy(h.magic, capture::kMagic, sizeof h.magic);
  h.version = capture::kFormatVersion;
  h.header_size = capture::kHeaderSize;
  h.pid = static_cast<uint64_t>(getpid());
  timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  h.start_time_ns = static_cast<uint64_t>(rt.tv_sec) * 1000000000ull + static_cast<uint64_t>(rt.tv_nsec);
  h.flags = (g_native ? capture::kFlagNative : 0) | (g_aggregate ? capture::kFlagAggregate : 0) | extra_flags;
  return write(fd, &h, sizeof h) == static_cast<ssize_t>(sizeof h);
}

void emit_start_info_locked() {
  char cmd[8192];
  int cfd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  ssize_t n = cfd >= 0 ? read(cfd, cmd, sizeof cmd) : 0;
  if (cfd >= 0) close(cfd);
  emit_info("argv", cmd, n > 0 ? static_cast<size_t>(n) : 0);
  emit_info("native", g_native ? "1" : "0", 1);
  emit_info("mode", g_aggregate ? "aggregate" : "events", g_aggregate ? 9 : 6);
  char num[32];
  int k = snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(g_interval_ns));
  emit_info("interval_ns", num, static_cast<size_t>(k));
  k = snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(g_sample_rate));
  emit_info("sample_rate", num, static_cast<size_t>(k));
  if (g_attached) emit_info("attached", "1", 1);
}

namespace {

// Starts tracking into g_output_path (run: the constructor; attach: the entry below).
// Returns false, with the reason in `why`, when the program has to run on untracked.
bool start_tracking(bool after_exec, char* why, size_t whylen) {
  const char* path = g_output_path;
  g_start_ns = now_ns();
  g_owner_pid = getpid();
  static bool once = false;  // process-wide set-up, never undone
  if (!once) {
    if (!resolve_real()) {
      snprintf(why, whylen, "leakscope: cannot find the C library's allocator; the program runs untracked");
      return false;
    }
    self_module_init();
    stacks_init(g_self.text_lo, g_self.text_hi);
  }
  // `run` and `attach` create the file (O_EXCL, 0600); we open exactly that file and refuse
  // links. After an exec the capture follows the new program image: it starts over (the
  // capture describes the last image, e.g. python behind a pyenv shim or a launcher script).
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | (after_exec ? O_TRUNC : 0));
  if (fd < 0 && errno == ENOENT) fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    snprintf(why, whylen, "leakscope: cannot open the capture %s (%s); the program runs untracked", path, strerror(errno));
    return false;
  }
  if (!write_capture_header(fd, 0)) {
    snprintf(why, whylen, "leakscope: cannot write the capture header; the program runs untracked");
    close(fd);
    return false;
  }
  if (!writer_start(fd)) {  // it closed the descriptor (possibly renumbered)
    snprintf(why, whylen, "leakscope: cannot start the writer; the program runs untracked");
    return false;
  }
  defs_lock();
  emit_start_info_locked();
  defs_unlock();
  follow_fork_started();
  g_python_attached = g_attached;
  python_detect();
  g_active = true;
  if (!once) {
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    atexit(on_libc_exit);
    once = true;
  }
  g_enabled.store(true, std::memory_order_release);
  patch_all_modules();
  return true;
}

}  // namespace

// `leakscope attach` calls this in the target, on a thread it stopped outside the allocator
// and the loader (cli/inject.cpp; found through .symtab, the agent exports nothing). Returns 0
// and "ok", or non-zero and why, in `reply`.
extern "C" __attribute__((used, noinline, visibility("hidden"))) int leakscope_attach_entry(const char* config,
                                                                                              char* reply,
                                                                                              size_t reply_len) {
  bool was = t_in_hook;
  t_in_hook = true;
  int rc = 0;
  // A detach answered its client and is handing the agent's memory back (~100 ms): a new
  // attach right after it (leakscope.stop(); leakscope.start()) waits for that, at most 2 s.
  for (int i = 0; i < 2000 && g_detaching.load(std::memory_order_acquire); ++i) {
    timespec ts{0, 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  if (g_detaching.load(std::memory_order_acquire)) {
    snprintf(reply, reply_len, "the previous detach is still handing memory back; try again in a moment");
    rc = 3;
  } else if (g_active) {
    snprintf(reply, reply_len, "already %s by leakscope (capture %s)%s", g_attached ? "attached" : "tracked",
             g_output_path, g_attached ? "; detach first: leakscope detach PID" : ", started by `leakscope run`");
    rc = 3;
  } else if (g_forked_child) {
    snprintf(reply, reply_len, "this process is a fork child of a tracked process; attach is not supported there");
    rc = 4;
  } else if (!g_real.dlsym && !resolve_real()) {
    snprintf(reply, reply_len, "cannot find the C library's allocator in this process");
    rc = 8;
  } else {
    char why[4400] = {};
    if (python_probe(why, sizeof why) < 0) {
      snprintf(reply, reply_len, "%s", why);
      rc = 5;
    } else {
      // Defaults, then the options of this attach.
      reset_options();
      g_output_path[0] = 0;
      char line[4200];
      for (const char* p = config; p && *p;) {
        const char* nl = strchr(p, '\n');
        size_t n = nl ? static_cast<size_t>(nl - p) : strlen(p);
        if (n < sizeof line) {
          memcpy(line, p, n);
          line[n] = 0;
          if (char* eq = strchr(line, '=')) {
            *eq = 0;
            apply_option(line, eq + 1);
          }
        }
        p = nl ? nl + 1 : p + n;
      }
      {
        Dl_info di;
        if (dladdr(reinterpret_cast<void*>(&say), &di) && di.dli_fname)
          snprintf(g_agent_path, sizeof g_agent_path, "%s", di.dli_fname);
      }
      g_attached = true;
      if (!g_output_path[0]) {
        snprintf(reply, reply_len, "no capture path given");
        rc = 6;
      } else if (!start_tracking(false, why, sizeof why)) {
        snprintf(reply, reply_len, "%s", why);
        g_attached = false;
        rc = 7;
      } else {
        snprintf(reply, reply_len, "ok");
      }
    }
  }
  t_in_hook = was;
  return rc;
}

std::atomic<bool> g_detaching{false};

void detach_disable() {
  g_detaching.store(true, std::memory_order_release);
  g_enabled.store(false, std::memory_order_release);
  unpatch_all_modules();
  python_uninstall();
}

void detach_grace() {
  // Hooks that passed their enabled check before the store are done within microseconds;
  // give them far longer before their rings and tables go away. The client has its answer.
  timespec ts{0, 100 * 1000 * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void detach_finish() {
  stacks_reset();
  sampling_reset();
  aggregate_reset();
  // What the agent's writer freed stays in its malloc arena; give free pages back, and drop the
  // resident code pages of the agent and its libraries (re-read from the file if used again).
  malloc_trim(0);
  release_code_pages();
  g_detach_at_ns = 0;
  g_attached = false;
  g_active = false;
}


void agent_message(const char* text) {
  if (!g_attached) say(text);  // an attached process's stderr is not ours to write to: the capture has it
  uint8_t rec[1200];
  size_t n = strlen(text);
  if (n > 1000) n = 1000;
  uint8_t* p = rec;
  *p++ = capture::kMessage;
  p = capture::put_bytes(p, text, n);
  defs_lock();
  emit_def_locked(rec, static_cast<size_t>(p - rec));
  defs_unlock();
}

void agent_stop(const char* reason, const ScanRequester* requester) {
  if (!g_active || !owns_capture()) return;
  bool was = t_in_hook;
  t_in_hook = true;
  static std::atomic<bool> checked{false};
  if (requester && g_findleaks && !g_attached && !checked.exchange(true)) findleaks_at_exit(*requester);
  writer_stop(reason);
  t_in_hook = was;
}

}  // namespace leakscope::agent

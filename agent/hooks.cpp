// libc-level hooks written into GOT slots: the malloc family, anonymous mmap/munmap/mremap,
// dlopen (patch modules loaded later), dlsym (hand our wrappers to ctypes and friends),
// _exit and exec* (flush first). Each hook calls the real libc function; it records only when
// it is the outermost hook on this thread (t_in_hook) and tracking is on. A free is recorded
// before the memory is released so another thread cannot reuse the address first.
#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <utility>

#include "agent/agent.h"

void* leakscope_dlsym_real_ptr = nullptr;

namespace leakscope::agent {

void record_alloc_native(uint8_t tag, const void* p, size_t size, void* ret, void* cfa) {
  // Until the PyMem hooks are in, Python allocates through here: schedule the install the
  // moment the interpreter is initialised (the writer's 5 ms poll is too late for short
  // programs). Py_AddPendingCall takes no lock we could be holding and does not allocate.
  // (Attach: the writer thread starts the installer; a thread created here would inherit this
  // thread's signal mask and could take signals meant for the main thread.)
  if (LSP_UNLIKELY(g_py_state.load(std::memory_order_relaxed) == PyState::kPending) && !g_python_attached)
    python_maybe_schedule();
  if (LSP_UNLIKELY(called_from_loader(ret))) return;
  if (g_sample_rate && tag != capture::kMmap) {
    if (LSP_LIKELY(!sample_take(size))) return;
    sampled_remember(p);
  }
  record_alloc_native_sampled(tag, p, size, ret, cfa);
}

void record_alloc_native_sampled(uint8_t tag, const void* p, size_t size, void* ret, void* cfa) {
  StackMode mode = python_walkable() ? StackMode::kPyAnyThread : StackMode::kNativeOnly;
  uint32_t stack = capture_stack(mode, ret, cfa);
  native_lock();
  put_alloc_record(g_ring_native, tag, p, size, stack);
  native_unlock();
}

void record_free_native(const void* p) {
  if (g_sample_rate && LSP_LIKELY(!sampled_forget(p))) return;
  native_lock();
  put_addr_record(g_ring_native, capture::kFree, p, 0, false);
  native_unlock();
}

void record_munmap(const void* p, size_t size) {
  native_lock();
  put_addr_record(g_ring_native, capture::kMunmap, p, size, true);
  native_unlock();
}

namespace {

inline bool recording() { return g_enabled.load(std::memory_order_relaxed); }


void* h_malloc(size_t n) {
  if (t_in_hook) return g_real.malloc(n);
  HookGuard g;
  void* p = g_real.malloc(n);
  if (p && recording()) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
  return p;
}
void h_free(void* p) {
  if (t_in_hook || !p) return g_real.free(p);
  HookGuard g;
  if (recording()) record_free_native(p);
  g_real.free(p);
}
void* h_calloc(size_t a, size_t b) {
  if (t_in_hook) return g_real.calloc(a, b);
  HookGuard g;
  void* p = g_real.calloc(a, b);
  if (p && recording()) record_alloc_native(capture::kAllocMalloc, p, a * b, LSP_CALLER);
  return p;
}
void* h_realloc(void* old, size_t n) {
  if (t_in_hook) return g_real.realloc(old, n);
  HookGuard g;
  bool on = recording();
  if (on && old) record_free_native(old);
  void* p = g_real.realloc(old, n);
  if (on) {
    if (p) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
    else if (old && n) record_alloc_native(capture::kAllocMalloc, old, g_real.malloc_usable_size(old), LSP_CALLER);
  }
  return p;
}
void* h_reallocarray(void* old, size_t a, size_t b) {
  if (t_in_hook) return g_real.reallocarray(old, a, b);
  HookGuard g;
  bool on = recording();
  size_t n;
  if (__builtin_mul_overflow(a, b, &n)) return g_real.reallocarray(old, a, b);  // fails with ENOMEM
  if (on && old) record_free_native(old);
  void* p = g_real.reallocarray(old, a, b);
  if (on) {
    if (p) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
    else if (old && n) record_alloc_native(capture::kAllocMalloc, old, g_real.malloc_usable_size(old), LSP_CALLER);
  }
  return p;
}
int h_posix_memalign(void** out, size_t align, size_t n) {
  if (t_in_hook) return g_real.posix_memalign(out, align, n);
  HookGuard g;
  int rc = g_real.posix_memalign(out, align, n);
  if (rc == 0 && recording()) record_alloc_native(capture::kAllocMalloc, *out, n, LSP_CALLER);
  return rc;
}
void* h_aligned_alloc(size_t align, size_t n) {
  if (t_in_hook) return g_real.aligned_alloc(align, n);
  HookGuard g;
  void* p = g_real.aligned_alloc(align, n);
  if (p && recording()) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
  return p;
}
void* h_memalign(size_t align, size_t n) {
  if (t_in_hook) return g_real.memalign(align, n);
  HookGuard g;
  void* p = g_real.memalign(align, n);
  if (p && recording()) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
  return p;
}
void* h_valloc(size_t n) {
  if (t_in_hook) return g_real.valloc(n);
  HookGuard g;
  void* p = g_real.valloc(n);
  if (p && recording()) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
  return p;
}
void* h_pvalloc(size_t n) {
  if (t_in_hook) return g_real.pvalloc(n);
  HookGuard g;
  void* p = g_real.pvalloc(n);
  if (p && recording()) record_alloc_native(capture::kAllocMalloc, p, n, LSP_CALLER);
  return p;
}
void* h_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (t_in_hook || !(flags & MAP_ANONYMOUS)) return g_real.mmap(addr, len, prot, flags, fd, off);
  HookGuard g;
  // MAP_FIXED replaces whatever was there: account it as unmapped first.
  if ((flags & MAP_FIXED) && recording()) record_munmap(addr, len);
  void* p = g_real.mmap(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED && recording()) record_alloc_native(capture::kMmap, p, len, LSP_CALLER);
  return p;
}
int h_munmap(void* addr, size_t len) {
  if (t_in_hook) return g_real.munmap(addr, len);
  HookGuard g;
  if (recording()) record_munmap(addr, len);
  return g_real.munmap(addr, len);
}
void* h_mremap(void* old, size_t old_len, size_t new_len, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  if (t_in_hook) return g_real.mremap(old, old_len, new_len, flags, new_addr);
  HookGuard g;
  bool on = recording();
  void* p = g_real.mremap(old, old_len, new_len, flags, new_addr);
  if (on && p != MAP_FAILED) {
    // Only ranges we saw as anonymous mappings are counted by the reader; others are ignored.
    record_munmap(old, old_len);
    record_alloc_native(capture::kMmap, p, new_len, LSP_CALLER);
  }
  return p;
}

void* h_dlopen(const char* file, int mode) {
  void* h = g_real.dlopen(file, mode);
  if (h && g_enabled.load(std::memory_order_acquire)) {  // after a detach: nothing to do
    HookGuard g;
    python_detect();
    patch_all_modules();
  }
  return h;
}

}  // namespace

// dlsym/dlvsym: RTLD_NEXT is resolved relative to the caller, so for it the hook must not be a
// new caller: an assembly stub jumps straight to the real function in that case.
extern "C" LSP_HIDDEN void* leakscope_dlsym_impl(void* handle, const char* name) {
  void* r = g_real.dlsym(handle, name);
  // ctypes.CDLL(None).malloc and friends get the hook when the lookup found libc's own
  // allocator (g_real holds exactly those), never when it found a program's own malloc.
  if (!r) return r;
  const std::pair<void*, void*> alloc[] = {
      {reinterpret_cast<void*>(g_real.malloc), reinterpret_cast<void*>(h_malloc)},
      {reinterpret_cast<void*>(g_real.free), reinterpret_cast<void*>(h_free)},
      {reinterpret_cast<void*>(g_real.calloc), reinterpret_cast<void*>(h_calloc)},
      {reinterpret_cast<void*>(g_real.realloc), reinterpret_cast<void*>(h_realloc)},
      {reinterpret_cast<void*>(g_real.reallocarray), reinterpret_cast<void*>(h_reallocarray)},
      {reinterpret_cast<void*>(g_real.posix_memalign), reinterpret_cast<void*>(h_posix_memalign)},
      {reinterpret_cast<void*>(g_real.aligned_alloc), reinterpret_cast<void*>(h_aligned_alloc)},
      {reinterpret_cast<void*>(g_real.memalign), reinterpret_cast<void*>(h_memalign)},
      {reinterpret_cast<void*>(g_real.valloc), reinterpret_cast<void*>(h_valloc)},
      {reinterpret_cast<void*>(g_real.pvalloc), reinterpret_cast<void*>(h_pvalloc)},
  };
  for (const auto& [real, hook] : alloc)
    if (r == real) return hook;
  return r;
}

asm(R"(
  .text
  .globl leakscope_dlsym_hook
  .hidden leakscope_dlsym_hook
  .type leakscope_dlsym_hook,@function
leakscope_dlsym_hook:
  cmpq $-1, %rdi
  je 1f
  jmp leakscope_dlsym_impl
1:
  jmp *leakscope_dlsym_real_ptr(%rip)
  .size leakscope_dlsym_hook, .-leakscope_dlsym_hook
)");
extern "C" void leakscope_dlsym_hook(void*, const char*);

namespace {
[[noreturn]] void h_exit(int status) {
  if (owns_capture()) {
    char reason[32];  // the status is the process's own word on how it ended (a pool worker's)
    snprintf(reason, sizeof reason, "_exit %d", status);
    agent_stop(reason);
  }
  g_real.exit_(status);
  __builtin_unreachable();
}
// exec policy: the process `run` started follows exec into the new image (same capture, which
// starts over); fork children and set-id programs are left alone. The environment handed to
// the new image gets the agent's variables back; the agent removes them again before main.
struct ExecEnv {
  char** env = nullptr;
  char* strings[16] = {};
  ~ExecEnv() {
    for (char* s : strings) g_real.free(s);
    g_real.free(env);
  }
};
char* concat(const char* a, const char* b, const char* c = "", const char* d = "") {
  size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
  char* s = static_cast<char*>(g_real.malloc(n));
  if (s) snprintf(s, n, "%s%s%s%s", a, b, c, d);
  return s;
}
bool follow_exec(const char* path, char* const envp[], ExecEnv* out) {
  if (!owns_capture() || !g_agent_path[0] || !g_output_path[0] || !g_enabled.load()) return false;
  struct stat st;
  if (path && strchr(path, '/') && stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) return false;
  size_t n = 0;
  while (envp && envp[n]) ++n;
  out->env = static_cast<char**>(g_real.malloc((n + 20) * sizeof(char*)));
  if (!out->env) return false;
  const char* orig = nullptr;
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (strncmp(envp[i], "LD_PRELOAD=", 11) == 0) {
      orig = envp[i] + 11;
      continue;
    }
    if (is_agent_var(envp[i])) continue;
    out->env[k++] = envp[i];
  }
  out->strings[0] = orig && *orig ? concat("LD_PRELOAD=", g_agent_path, ":", orig) : concat("LD_PRELOAD=", g_agent_path);
  if (orig && *orig) out->strings[1] = concat("LEAKSCOPE_ORIG_LD_PRELOAD=", orig);
  out->strings[2] = concat("LEAKSCOPE_OUTPUT=", g_output_path);
  out->strings[3] = concat("LEAKSCOPE_NATIVE=", g_native ? "1" : "0");
  out->strings[4] = concat("LEAKSCOPE_EXEC=1", "");
  char lvl[16];
  snprintf(lvl, sizeof lvl, "%d", g_zstd_level);
  out->strings[5] = concat("LEAKSCOPE_ZSTD_LEVEL=", lvl);
  char num[32];
  snprintf(num, sizeof num, "%.3f", static_cast<double>(g_interval_ns) / 1e9);
  out->strings[6] = concat("LEAKSCOPE_INTERVAL=", num);
  snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(g_sample_rate));
  out->strings[7] = concat("LEAKSCOPE_SAMPLE_RATE=", num);
  out->strings[8] = concat("LEAKSCOPE_MODE=", g_aggregate ? "aggregate" : "events");
  snprintf(num, sizeof num, "%.3f", static_cast<double>(g_full_res_ns) / 1e9);
  out->strings[9] = concat("LEAKSCOPE_FULL_RESOLUTION=", num);
  snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(g_compact_min_bytes));
  out->strings[10] = concat("LEAKSCOPE_COMPACT_BYTES=", num);
  snprintf(num, sizeof num, "%lld", static_cast<long long>(getpid()));  // exec keeps the pid
  out->strings[11] = concat("LEAKSCOPE_PID=", num);
  if (g_findleaks_name[0]) out->strings[12] = concat("LEAKSCOPE_FINDLEAKS=", g_findleaks_name);
  out->strings[13] = concat("LEAKSCOPE_RETENTION=", g_retention ? "1" : "0");
  out->strings[14] = concat("LEAKSCOPE_FOLLOW_FORK=", follow_fork_on_exec() ? "1" : "0");
  snprintf(num, sizeof num, "%u", g_max_processes);
  out->strings[15] = concat("LEAKSCOPE_MAX_PROCESSES=", num);
  for (char* s : out->strings)
    if (s) out->env[k++] = s;
  out->env[k] = nullptr;
  return true;
}
// Flushes, then runs `exec(env)` with the environment the new image gets. A vfork child shares
// the parent's memory and thread-local storage: it touches neither t_in_hook (a successful
// exec would leave the parent's flag set) nor the writer.
template <typename Exec>
int exec_following(const char* file, char* const envp[], Exec&& exec) {
  if (!owns_capture()) return exec(envp);
  HookGuard g;
  writer_flush_sync();
  ExecEnv e;
  return exec(follow_exec(file, envp, &e) ? e.env : envp);
}
int h_execve(const char* path, char* const argv[], char* const envp[]) {
  return exec_following(path, envp, [&](char* const* env) { return g_real.execve(path, argv, env); });
}
int h_execvpe(const char* file, char* const argv[], char* const envp[]) {
  return exec_following(file, envp, [&](char* const* env) { return g_real.execvpe(file, argv, env); });
}
// execv and execvp are execve and execvpe with the process's environment.
int h_execv(const char* path, char* const argv[]) { return h_execve(path, argv, environ); }
int h_execvp(const char* file, char* const argv[]) { return h_execvpe(file, argv, environ); }

const HookEntry kHooks[] = {  // the malloc family first: kAllocHooks (agent.h) entries
    {"malloc", reinterpret_cast<void*>(h_malloc)},
    {"free", reinterpret_cast<void*>(h_free)},
    {"calloc", reinterpret_cast<void*>(h_calloc)},
    {"realloc", reinterpret_cast<void*>(h_realloc)},
    {"reallocarray", reinterpret_cast<void*>(h_reallocarray)},
    {"posix_memalign", reinterpret_cast<void*>(h_posix_memalign)},
    {"aligned_alloc", reinterpret_cast<void*>(h_aligned_alloc)},
    {"memalign", reinterpret_cast<void*>(h_memalign)},
    {"valloc", reinterpret_cast<void*>(h_valloc)},
    {"pvalloc", reinterpret_cast<void*>(h_pvalloc)},
    {"mmap", reinterpret_cast<void*>(h_mmap)},
    {"mmap64", reinterpret_cast<void*>(h_mmap)},
    {"munmap", reinterpret_cast<void*>(h_munmap)},
    {"mremap", reinterpret_cast<void*>(h_mremap)},
    {"dlopen", reinterpret_cast<void*>(h_dlopen)},
    {"dlsym", reinterpret_cast<void*>(leakscope_dlsym_hook)},
    {"_exit", reinterpret_cast<void*>(h_exit)},
    {"_Exit", reinterpret_cast<void*>(h_exit)},
    {"execve", reinterpret_cast<void*>(h_execve)},
    {"execv", reinterpret_cast<void*>(h_execv)},
    {"execvp", reinterpret_cast<void*>(h_execvp)},
    {"execvpe", reinterpret_cast<void*>(h_execvpe)},
    {"waitpid", reinterpret_cast<void*>(h_waitpid)},
    {"wait", reinterpret_cast<void*>(h_wait)},
    {"wait4", reinterpret_cast<void*>(h_wait4)},
    {"waitid", reinterpret_cast<void*>(h_waitid)},
};
}  // namespace

static_assert(kAllocHooks == 10, "the malloc family leads kHooks");
const HookEntry* hook_table(size_t* n) {
  *n = sizeof kHooks / sizeof kHooks[0];
  return kHooks;
}

}  // namespace leakscope::agent

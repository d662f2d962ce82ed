// libc-level hooks written into GOT slots: the malloc family, anonymous mmap/munmap/mremap,
// dlopen (patch modules loaded later), dlsym (hand our wrappers to ctypes and friends),
// _exit and exec* (flush first). Each hook calls the real libc function; it records only when
// it is the outermost hook on this thread (t_in_hook) and tracking is on. A free is recorded
// before the memory is released so another thread cannot reuse the address first.
#include <dlfcn.h>
#include <sys/mman.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <utility>

#include "agent/option_list.h"
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
#define LSP_REAL_AND_HOOK_(symbol, wrapper) {reinterpret_cast<void*>(g_real.symbol), reinterpret_cast<void*>(wrapper)},
  const std::pair<void*, void*> alloc[] = {LSP_ALLOC_HOOKS(LSP_REAL_AND_HOOK_)};
#undef LSP_REAL_AND_HOOK_
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
extern "C" void* leakscope_dlsym_hook(void*, const char*);

namespace {
[[noreturn]] void h_exit(int status) {
  if (owns_capture()) {
    char reason[32];  // the status is the process's own word on how it ended (a pool worker's)
    snprintf(reason, sizeof reason, "_exit %d", status);
    agent_stop(reason);
  }
  g_real._exit(status);
  __builtin_unreachable();
}
// exec policy: the process `run` started follows exec into the new image (same capture, which
// starts over); set-id programs are left alone; fork children too, unless --follow-fork (then
// the new image writes a capture of the tree: docs/process-trees.md). The environment handed to
// the new image gets the agent's variables back; the agent removes them again before main.
// Built in a buffer on the stack, never with malloc: a vfork child shares the parent's heap.
struct ExecEnv {
  char** env = nullptr;
  size_t used = 0;
  alignas(16) char buf[24 * 1024];  // on the caller's stack: small (a thread's stack may be)
  char* take(size_t n) {
    n = (n + 15) & ~static_cast<size_t>(15);
    if (n > sizeof buf - used) return nullptr;
    char* p = buf + used;
    used += n;
    return p;
  }
  bool add(size_t* k, const char* a, const char* b, const char* c = "", const char* d = "") {
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
    char* s = take(n);
    if (!s) return false;
    snprintf(s, n, "%s%s%s%s", a, b, c, d);
    env[(*k)++] = s;
    return true;
  }
};
// The variables follow_exec adds at most: LD_PRELOAD and the original, every option, and
// OUTPUT, PID, EXEC.
constexpr size_t kExportedVars = 2 + std::size(options::kTrackOptions) + 3;
// `tree_child`: a vfork child of a followed process (no atfork handler ran: it owns nothing),
// whose new image is a new member of the tree, its capture named there (LEAKSCOPE_PID=0).
bool follow_exec(const char* path, char* const envp[], ExecEnv* out, bool tree_child) {
  if (!g_agent_path[0] || !g_output_path[0] || !g_enabled.load()) return false;
  struct stat st;
  if (path && strchr(path, '/') && stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) return false;
  size_t n = 0;
  while (envp && envp[n]) ++n;
  out->env = reinterpret_cast<char**>(out->take((n + kExportedVars + 1) * sizeof(char*)));
  if (!out->env) return false;  // an environment too big for the buffer: not followed
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
  char num[32];
  bool ok = orig && *orig ? out->add(&k, "LD_PRELOAD=", g_agent_path, ":", orig) && out->add(&k, "LEAKSCOPE_ORIG_LD_PRELOAD=", orig)
                          : out->add(&k, "LD_PRELOAD=", g_agent_path);
  for (size_t i = 0; i < std::size(options::kTrackOptions); ++i)  // what the new image gets unchanged
    if (const char* v = option_text_to_pass_on(i)) ok = ok && out->add(&k, options::kTrackOptions[i].env, "=", v);
  if (tree_child) {
    ok = ok && out->add(&k, "LEAKSCOPE_OUTPUT=", "tree") && out->add(&k, "LEAKSCOPE_PID=", "0");
    ok = ok && out->add(&k, "LEAKSCOPE_RETENTION=", "0");
  } else {
    snprintf(num, sizeof num, "%lld", static_cast<long long>(getpid()));  // exec keeps the pid
    ok = ok && out->add(&k, "LEAKSCOPE_OUTPUT=", g_output_path) && out->add(&k, "LEAKSCOPE_PID=", num) &&
         out->add(&k, "LEAKSCOPE_EXEC=1", "");
    if (g_findleaks_name[0]) ok = ok && out->add(&k, "LEAKSCOPE_FINDLEAKS=", g_findleaks_name);
    ok = ok && out->add(&k, "LEAKSCOPE_RETENTION=", g_retention ? "1" : "0");
  }
  // --follow-fork: the new image follows its own forks, within what is left of the bound, and
  // says where it sits in the tree.
  ok = ok && out->add(&k, "LEAKSCOPE_FOLLOW_FORK=", g_follow_fork ? "1" : "0");
  if (g_follow_fork) {
    snprintf(num, sizeof num, "%u", follow_fork_budget());
    ok = ok && out->add(&k, "LEAKSCOPE_MAX_PROCESSES=", num);
    char parent[256], ppid[24];
    if (follow_fork_exec_parent(tree_child, parent, sizeof parent, ppid, sizeof ppid))
      ok = ok && out->add(&k, "LEAKSCOPE_PARENT_CAPTURE=", parent) && out->add(&k, "LEAKSCOPE_PARENT_PID=", ppid);
    ok = ok && out->add(&k, "LEAKSCOPE_TREE_ROOT=", follow_fork_tree_root());
  }
  if (!ok) return false;
  out->env[k] = nullptr;
  return true;
}
// Flushes, then runs `exec(env)` with the environment the new image gets. A vfork child shares
// the parent's memory and thread-local storage: it touches neither t_in_hook (a successful
// exec would leave the parent's flag set) nor the writer, and allocates nothing.
template <typename Exec>
int exec_following(const char* file, char* const envp[], Exec&& exec) {
  if (!owns_capture()) {
    if (!follow_fork_vfork_child()) return exec(envp);
    ExecEnv e;  // on this stack: the parent's heap is not ours to use
    return exec(follow_exec(file, envp, &e, true) ? e.env : envp);
  }
  HookGuard g;
  writer_flush_sync();
  ExecEnv e;
  return exec(follow_exec(file, envp, &e, false) ? e.env : envp);
}
// posix_spawn runs exec inside libc, where the exec hooks never see it: with --follow-fork the
// new process is a member of the tree, handed the same environment a vfork child's image gets.
int h_posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa, const posix_spawnattr_t* attr,
                  char* const argv[], char* const envp[]) {
  ExecEnv e;
  const bool follow = owns_capture() && follow_fork_count_one() && follow_exec(path, envp, &e, true);
  return posix_spawn(pid, path, fa, attr, argv, follow ? e.env : envp);
}
int h_posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa, const posix_spawnattr_t* attr,
                   char* const argv[], char* const envp[]) {
  ExecEnv e;
  const bool follow = owns_capture() && follow_fork_count_one() && follow_exec(file, envp, &e, true);
  return posix_spawnp(pid, file, fa, attr, argv, follow ? e.env : envp);
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

#define LSP_HOOK_ENTRY_(symbol, wrapper) {#symbol, reinterpret_cast<void*>(wrapper)},
const HookEntry kHooks[] = {LSP_ALLOC_HOOKS(LSP_HOOK_ENTRY_) LSP_OTHER_HOOKS(LSP_HOOK_ENTRY_)};
#undef LSP_HOOK_ENTRY_
// Each wrapper has the type of libc's own declaration of the function it replaces (libc's
// attributes, malloc or nonnull, are not part of the type: the compiler says it drops them).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#define LSP_CHECK_HOOK_(symbol, wrapper) \
  static_assert(kSameFn<decltype(&wrapper), decltype(&::symbol)>, "hook_list.h: " #wrapper " is not of " #symbol "'s type");
LSP_ALLOC_HOOKS(LSP_CHECK_HOOK_)
LSP_OTHER_HOOKS(LSP_CHECK_HOOK_)
#undef LSP_CHECK_HOOK_
#pragma GCC diagnostic pop
}  // namespace

const HookEntry* hook_table(size_t* n) {
  *n = sizeof kHooks / sizeof kHooks[0];
  return kHooks;
}

}  // namespace leakscope::agent

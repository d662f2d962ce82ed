// leakscope agent: the hooked functions and the libc functions the agent calls, as the one list
// every use reads (LeakSanitizer's interceptor lists are the model).
//
//   LSP_ALLOC_HOOKS(X), LSP_OTHER_HOOKS(X): X(symbol, wrapper). `symbol` is the libc function
//     the GOT patcher redirects in every loaded object (hook_table(), platform/linux_got.cpp);
//     `wrapper` is the agent's function put there. Its type must be libc's declaration of
//     `symbol` (hooks.cpp checks each at compile time). The malloc family comes first:
//     hook_table()'s first kAllocHooks entries, which the patcher treats apart and dlsym hands
//     out for libc's own allocator.
//   LSP_REAL_FNS(X): X(symbol). libc's own functions the agent calls (RealFns g_real: a field
//     per symbol, of the type of libc's declaration), resolved in libc itself at start.
#pragma once
#include <dlfcn.h>
#include <malloc.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <type_traits>

#define LSP_ALLOC_HOOKS(X)                                                                     \
  X(malloc, h_malloc) X(free, h_free) X(calloc, h_calloc) X(realloc, h_realloc)               \
  X(reallocarray, h_reallocarray) X(posix_memalign, h_posix_memalign)                          \
  X(aligned_alloc, h_aligned_alloc) X(memalign, h_memalign) X(valloc, h_valloc) X(pvalloc, h_pvalloc)

#define LSP_OTHER_HOOKS(X)                                                                     \
  X(mmap, h_mmap) X(mmap64, h_mmap) X(munmap, h_munmap) X(mremap, h_mremap)                   \
  X(dlopen, h_dlopen) X(dlsym, leakscope_dlsym_hook)                                           \
  X(_exit, h_exit) X(_Exit, h_exit)                                                            \
  X(execve, h_execve) X(execv, h_execv) X(execvp, h_execvp) X(execvpe, h_execvpe)              \
  X(posix_spawn, h_posix_spawn) X(posix_spawnp, h_posix_spawnp)                                \
  X(waitpid, h_waitpid) X(wait, h_wait) X(wait4, h_wait4) X(waitid, h_waitid)

#define LSP_REAL_FNS(X)                                                                        \
  X(malloc) X(free) X(calloc) X(realloc) X(reallocarray) X(posix_memalign) X(aligned_alloc)    \
  X(memalign) X(valloc) X(pvalloc) X(mmap) X(munmap) X(mremap) X(dlopen) X(dlsym) X(dlvsym)    \
  X(_exit) X(execve) X(execvpe) X(malloc_usable_size)

namespace leakscope::agent {

#define LSP_COUNT_HOOK_(symbol, wrapper) +1
inline constexpr size_t kAllocHooks = 0 LSP_ALLOC_HOOKS(LSP_COUNT_HOOK_);
#undef LSP_COUNT_HOOK_

// Function pointer types compared without noexcept (glibc declares most of libc noexcept in
// C++; a wrapper need not be).
template <typename F>
struct PlainFn {
  using type = F;
};
template <typename R, typename... A>
struct PlainFn<R (*)(A...) noexcept> {
  using type = R (*)(A...);
};
template <typename R, typename... A>
struct PlainFn<R (*)(A..., ...) noexcept> {
  using type = R (*)(A..., ...);
};
template <typename A, typename B>
inline constexpr bool kSameFn = std::is_same_v<typename PlainFn<A>::type, typename PlainFn<B>::type>;

}  // namespace leakscope::agent

// Shared state of the in-process agent. Everything here may be touched from allocation hooks:
// no exceptions, no allocation through the hooked allocator, no stdio, no blocking locks on the
// hot path. Locks: g_defs_lock (interning, D ring producer), the N ring spin lock. Order:
// defs lock before N lock. Functions named *_locked need the lock their comment names.
#pragma once
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dlfcn.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "agent/hook_list.h"
#include "capture/format.h"
#include "python/walker.h"

#define LSP_HIDDEN __attribute__((visibility("hidden")))
#define LSP_LIKELY(x) __builtin_expect(!!(x), 1)
#define LSP_UNLIKELY(x) __builtin_expect(!!(x), 0)

extern "C" void* leakscope_dlsym_real_ptr __attribute__((visibility("hidden")));  // hooks.cpp

namespace leakscope::agent {

// ---- the real functions, taken from libc itself (never &malloc: see docs/architecture.md)
// One field per LSP_REAL_FNS symbol (hook_list.h), of the type of libc's declaration.
struct RealFns {
#define LSP_REAL_FIELD_(symbol) decltype(&::symbol) symbol;
  LSP_REAL_FNS(LSP_REAL_FIELD_)
#undef LSP_REAL_FIELD_
};
extern RealFns g_real LSP_HIDDEN;
// A symbol of the process (the interpreter's, libc's) through the real dlsym; false if absent.
template <typename T>
bool real_sym(T& out, const char* name) {
  out = reinterpret_cast<T>(g_real.dlsym(RTLD_DEFAULT, name));
  return out != nullptr;
}

// ---- global switches
extern std::atomic<bool> g_enabled LSP_HIDDEN;  // hooks record only while true
extern bool g_native LSP_HIDDEN;                // --native
extern uint64_t g_start_ns LSP_HIDDEN;          // CLOCK_MONOTONIC at start
extern int g_zstd_level LSP_HIDDEN;
extern uint64_t g_interval_ns LSP_HIDDEN;       // --interval: flush/stats cadence (<= 1 s)
extern uint64_t g_sample_rate LSP_HIDDEN;       // --sample-rate: mean bytes between samples, 0 = all
extern uint64_t g_full_res_ns LSP_HIDDEN;       // --full-resolution: snapshots younger stay unthinned
extern uint64_t g_compact_min_bytes LSP_HIDDEN; // thin after max(this, half the file) more bytes
extern bool g_aggregate LSP_HIDDEN;             // --mode aggregate (default): snapshots, not events
extern bool g_forked_child LSP_HIDDEN;          // this process is a fork child: left alone
extern bool g_attached LSP_HIDDEN;              // loaded into a running process by `leakscope attach`
extern uint64_t g_detach_at_ns LSP_HIDDEN;      // attach --duration: detach at this now_ns() (0: never)
extern bool g_findleaks LSP_HIDDEN;             // run --findleaks: a reachability check when tracking stops
// The live table is kept (aggregate mode, or events mode with --findleaks): `findleaks` works.
extern bool g_retention LSP_HIDDEN;             // retention paths when a Python run ends (--no-retention)
// run --follow-fork (docs/process-trees.md, agent/fork_follow.cpp): forked children write
// captures of their own, continuing the parent's definitions.
extern bool g_follow_fork LSP_HIDDEN;
extern char g_python_version[48] LSP_HIDDEN;    // as written in the INFO record ("" before Python is seen)
extern uint32_t g_max_processes LSP_HIDDEN;     // captures per tree (the root's included)
void follow_fork_started();                     // start_tracking: the tree's root and counter
// For an exec (agent/hooks.cpp follow_exec): the captures the tree may still make; the root
// capture's path; whether this is a vfork child of a followed process whose new image joins the
// tree (counted); the parent capture (base name) and pid the new image is to name.
unsigned follow_fork_budget();
const char* follow_fork_tree_root();
bool follow_fork_vfork_child();
bool follow_fork_count_one();  // posix_spawn: one more member of the tree, if the bound allows
bool follow_fork_exec_parent(bool tree_child, char* parent, size_t plen, char* ppid, size_t pidlen);
// An image exec'd by a vfork child (LEAKSCOPE_PID=0): creates its capture STEM.PID.lsc beside
// the tree's root and points g_output_path at it.
bool follow_fork_exec_child_output();
// attach --children: "tree_root" (the root capture's path, for the names of later forks),
// "parent_capture" and "parent_pid" (an attached descendant's place in the tree: written as
// INFO records when tracking starts, with no parent_defs: its capture starts from nothing).
// (nullptr, nullptr): back to the defaults.
void follow_fork_option(const char* key, const char* value);
void follow_fork_prepare_locked();              // pthread_atfork prepare, definition lock held
bool follow_fork_child_locked();                // atfork child: true when this child is followed
void follow_fork_after_locked();                // atfork parent: what prepare took
// A followed fork child: the agent's other locks, which a thread that no longer exists may have
// held at the fork, are reset (their data may be mid-update: a record lost, never a hang).
void sampling_after_fork_child();
void stacks_after_fork_child();
void gc_view_after_fork_child();
void patch_after_fork_child();
// The wait family, hooked: with --follow-fork a reaped child's end is written as INFO
// "child_exit PID" = "exit N" | "signal N" (a worker killed by a signal has no STOP of its own).
pid_t h_waitpid(pid_t pid, int* status, int options);
pid_t h_wait(int* status);
pid_t h_wait4(pid_t pid, int* status, int options, struct rusage* ru);
int h_waitid(idtype_t idtype, id_t id, siginfo_t* info, int options);
// The capture header for this process (pid, start time now, flags) written to fd.
bool write_capture_header(int fd, uint32_t extra_flags);
// INFO records every capture starts with (argv, native, mode, interval, sample rate).
void emit_start_info_locked();
void emit_info(const char* key, const char* value, size_t vlen);  // definition lock held
inline bool keeps_live_table() { return g_aggregate || g_findleaks; }
// Detach, in the writer thread: recording off, every patched slot and the PyMem allocators
// back (detach_disable); the final chunk, and the client answered; then a grace period for
// hooks already past their checks (detach_grace), and the agent's rings, tables and caches
// handed back (writer_release, detach_finish). Events of hooks still in flight at the final chunk are not recorded; the
// memory they touch is not handed back before the grace is over. g_detaching spans it all: a
// new attach waits for it (leakscope_attach_entry).
void detach_disable();
void detach_grace();
void detach_finish();
extern std::atomic<bool> g_detaching LSP_HIDDEN;
extern pid_t g_owner_pid LSP_HIDDEN;            // the process whose capture this is
// False in a fork child, and in a vfork child (which shares our memory but runs no atfork
// handlers): such a process must not flush, stop or hand the capture on across exec.
bool owns_capture();
// "NAME=value" is one of the variables `run` or the exec hooks set (scrubbed at load).
bool is_agent_var(const char* entry);
// The text of agent/option_list.h's option i this process got, when the exec hooks pass it on
// to a new image unchanged (Option::pass_on); else nullptr.
const char* option_text_to_pass_on(size_t i);
extern char g_agent_path[4096] LSP_HIDDEN;      // for re-injection across exec
extern char g_output_path[4096] LSP_HIDDEN;            // LEAKSCOPE_ZSTD_LEVEL (default 1)

// Thread-local reentrancy flag: set while a hook records, and forever on the writer thread.
extern constinit thread_local bool t_in_hook LSP_HIDDEN;
struct HookGuard {
  HookGuard() { t_in_hook = true; }
  ~HookGuard() { t_in_hook = false; }
};

uint64_t now_ns();  // CLOCK_MONOTONIC

// ---- rings (writer.cpp)
// Single-producer ring: the producer is whoever holds the GIL (P), the N spin lock (N) or the
// defs lock (D); the consumer is the writer thread.
struct Ring {
  uint8_t* data = nullptr;
  uint64_t mask = 0;
  std::atomic<uint64_t> head{0};  // written by the producer (release)
  std::atomic<uint64_t> tail{0};  // written by the consumer (release)
  // Owned by the producer: event delta state and a cached copy of tail.
  uint64_t last_addr = 0;
  uint64_t last_stack = 0;
  uint64_t tail_cached = 0;
};
extern Ring g_ring_py LSP_HIDDEN, g_ring_native LSP_HIDDEN, g_ring_defs LSP_HIDDEN;
void ring_append(Ring& r, const uint8_t* rec, size_t n);  // producer side; waits if full

// Producer fast path: encode a record of at most `max` bytes straight into the ring when
// there is contiguous room; otherwise encode on the stack and fall back to ring_append.
// `encode(uint8_t* p)` writes the record and returns its end; it is called exactly once.
template <typename F>
inline void ring_write(Ring& r, size_t max, F&& encode) {
  uint64_t head = r.head.load(std::memory_order_relaxed);
  uint64_t off = head & r.mask;
  uint64_t cap = r.mask + 1;
  if (LSP_LIKELY(off + max <= cap)) {
    if (LSP_UNLIKELY(head + max - r.tail_cached > cap)) r.tail_cached = r.tail.load(std::memory_order_acquire);
    if (LSP_LIKELY(head + max - r.tail_cached <= cap)) {
      uint8_t* p = r.data + off;
      uint8_t* e = encode(p);
      r.head.store(head + static_cast<uint64_t>(e - p), std::memory_order_release);
      return;
    }
  }
  uint8_t tmp[64];
  uint8_t* e = encode(tmp);
  ring_append(r, tmp, static_cast<size_t>(e - tmp));
}
// Event records (format.md). Producer side of `r`: the caller holds what makes it the producer.
inline void put_alloc_record(Ring& r, uint8_t tag, const void* p, size_t size, uint32_t stack) {
  ring_write(r, 32, [&](uint8_t* q) {
    *q++ = tag;
    q = capture::put_svarint(q, static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) - r.last_addr));
    q = capture::put_varint(q, size);
    q = capture::put_svarint(q, static_cast<int64_t>(stack) - static_cast<int64_t>(r.last_stack));
    r.last_addr = reinterpret_cast<uintptr_t>(p);
    r.last_stack = stack;
    return q;
  });
}
// FREE (no size) or, with a size, ARENA_ALLOC / ARENA_FREE / MUNMAP.
inline void put_addr_record(Ring& r, uint8_t tag, const void* p, size_t size, bool with_size) {
  ring_write(r, 24, [&](uint8_t* q) {
    *q++ = tag;
    q = capture::put_svarint(q, static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) - r.last_addr));
    if (with_size) q = capture::put_varint(q, size);
    r.last_addr = reinterpret_cast<uintptr_t>(p);
    return q;
  });
}
void native_lock();
void native_unlock();
void native_lock_init();  // writer_start: whether membarrier makes the owned mode possible
bool writer_start(int fd);
void writer_flush_sync();            // blocks until everything appended so far is written
void writer_stop(const char* reason);  // final stats + STOP, flush, join; idempotent
void writer_after_fork_child();
// A followed fork child: the parent's descriptor and socket copies closed, `fd` (a new capture,
// header written) adopted, the inherited definitions ring dropped (the parent writes those),
// counters reset (the thread is started by writer_run_in_fork_child, last).
void writer_start_in_fork_child(int fd);
void writer_run_in_fork_child();  // the child's writer thread, once everything else is reset
// Held by the writer while it takes events from a ring and applies them to the live table;
// a followed fork takes it in prepare, so the child inherits no half-applied batch.
void writer_consume_lock();
void writer_consume_all_locked();  // with the lock held: every unread event applied now
void writer_consume_unlock();
// CPython >= 3.12 warns in os.fork() when the process has more than one thread, and counts
// ours. Around a fork the writer is parked (everything flushed, thread joined) and started
// again from a later Python allocation, after CPython has counted threads.
void writer_park();                       // fork prepare; needs no lock
struct PyFramePosition;  // python.cpp
// Fork parent: restart the writer from the first Python allocation made after the forking
// frame moved on (os.fork() has returned, so CPython has counted threads), or from 20 ms on.
void writer_unpark_later(const PyFramePosition* forking_frame);
extern std::atomic<bool> g_writer_parked LSP_HIDDEN;
void writer_maybe_unpark();               // from a hook with t_in_hook set
extern std::atomic<int64_t> g_arena_bytes LSP_HIDDEN;

// ---- stacks (stacks.cpp)
// kPyGil: a PyMem MEM/OBJ hook (GIL held); kPyAnyThread: a C-level hook while python_walkable();
// kNativeOnly: anything else. The Python modes walk Python frames without checking again.
enum class StackMode { kPyGil, kPyAnyThread, kNativeOnly };
// return_address/cfa: the hook's __builtin_return_address(0) and __builtin_dwarf_cfa().
uint32_t capture_stack(StackMode mode, void* return_address, void* cfa);
void defs_lock();
void defs_unlock();
void emit_def_locked(const uint8_t* rec, size_t n);  // needs defs lock
void code_freed(const void* ptr);  // an OBJ block was freed: drop a code object's identity
// Filter of code object addresses, checked on every OBJ free (set when a code object is
// interned, never cleared: a hit only means "look it up").
inline constexpr uint32_t kCodeFilterBits = 1u << 16;
extern std::atomic<uint64_t> g_code_filter[kCodeFilterBits / 64] LSP_HIDDEN;
inline uint32_t code_bit(const void* p) {
  uint64_t x = reinterpret_cast<uintptr_t>(p) >> 4;
  return static_cast<uint32_t>((x * 0x9E3779B97F4A7C15ull) >> 48);
}
inline bool code_filter_hit(const void* ptr) {
  uint32_t bit = code_bit(ptr);
  return (g_code_filter[bit / 64].load(std::memory_order_relaxed) >> (bit % 64)) & 1;
}
void stacks_init(uintptr_t agent_lo, uintptr_t agent_hi);
// Detach: forget every interned id (a later attach writes a new capture from id 1) and hand
// the interning tables and per-thread caches back. Call with recording switched off.
void stacks_reset();
// Definitions made so far (ids are dense from 1): frames, stack nodes, code objects.
void stacks_counts(uint32_t* frames, uint32_t* nodes, uint32_t* codes);

// ---- python (python.cpp)
struct PythonApi {
  int minor = 0;
  const lsp_walker* walker = nullptr;
  const void* code_type = nullptr;
  void* (*tstate_unchecked)() = nullptr;        // GIL holder's tstate
  void* (*tstate_this_thread)() = nullptr;       // PyGILState_GetThisThreadState
  uintptr_t eval_lo = 0, eval_hi = 0;            // _PyEval_EvalFrameDefault text range
};
extern PythonApi g_py LSP_HIDDEN;
// A Python string's characters as UTF-8 into out (at most cap bytes; whole characters only).
void to_utf8(const lsp_pystr& s, uint8_t* out, size_t cap, size_t* len);
enum class PyState : int { kNone, kPending, kScheduled, kInstalled, kFailed };
extern std::atomic<PyState> g_py_state LSP_HIDDEN;
void python_detect();          // at start and after dlopen
void python_maybe_schedule();  // writer thread: Py_IsInitialized? -> Py_AddPendingCall
extern bool g_python_attached LSP_HIDDEN;  // attach: install from a GIL-taking thread instead
// 0: no Python in the process; 1: a supported one; -1: unsupported (why says which).
int python_probe(char* why, size_t n);
void python_uninstall();
// Where the GIL holder's innermost Python frame is (false: no Python frame to read).
struct PyFramePosition {
  const void* tstate = nullptr;
  const void* code = nullptr;
  uint32_t instr = 0;
  bool operator==(const PyFramePosition& o) const { return tstate == o.tstate && code == o.code && instr == o.instr; }
};
bool python_gil_frame(PyFramePosition* out);
// Python frames can be walked: the wrappers are in, or the interpreter is initialised and they
// are on their way (attach: C-level blocks allocated meanwhile still get their Python lines).
bool python_walkable_slow(PyState st);
inline bool python_walkable() {
  PyState st = g_py_state.load(std::memory_order_relaxed);
  return LSP_LIKELY(st == PyState::kInstalled) || python_walkable_slow(st);
}  // detach (writer thread): the original allocators back, under the GIL

// ---- hooks (hooks.cpp) and patching (platform/linux_got.cpp)
struct HookEntry {
  const char* name;
  void* hook;
};
const HookEntry* hook_table(size_t* n);  // hook_list.h; the first kAllocHooks are the malloc family
// The agent's own ELF object: skipped by the patcher, its frames dropped by the unwinder.
struct SelfModule {
  uintptr_t bias = 0, text_lo = 0, text_hi = 0;
};
extern SelfModule g_self LSP_HIDDEN;
void self_module_init();   // once, before patching
void patch_all_modules();  // patches every loaded module not yet patched
void emit_modules_locked();  // MODULE records for modules not yet described; needs defs lock
size_t unpatch_all_modules();  // detach: every patched slot of a still-loaded module back
bool foreign_allocator();      // the program's malloc is not the C library's: its slots stay unpatched
// Detach: madvise(MADV_DONTNEED) the executable segments of the agent, libzstd and libunwind
// (private, never written: their pages come back from the file if they run again).
void release_code_pages();

// ---- sampling (sampling.cpp); only used when g_sample_rate != 0
extern constinit thread_local int64_t t_sample_left LSP_HIDDEN;
bool sample_take_slow(size_t n);
// Charges n bytes to the thread's countdown and returns true when it stays above zero (the
// allocation is not sampled: nearly always); false, countdown untouched, when it would cross.
inline bool sample_countdown(size_t n) {
  int64_t left = t_sample_left - static_cast<int64_t>(n);
  if (LSP_UNLIKELY(left <= 0)) return false;
  t_sample_left = left;
  return true;
}
// Whether the allocation of n bytes is sampled (the thread's byte countdown crossed zero).
inline bool sample_take(size_t n) { return !sample_countdown(n) && sample_take_slow(n); }
void sampled_remember(const void* p);
void sampling_reset();
// Marks an address in the sample filter for good (interned code objects: their frees must
// reach the slow path, which drops their identity).
void sample_filter_mark(const void* p);  // detach: the sampled set and its filter emptied, their pages returned
bool sampled_forget_slow(const void* p);
// Counting filter in front of the sampled set: 0 means certainly not sampled.
inline constexpr uint32_t kSampleFilterBits = 16;
alignas(4096) extern std::atomic<uint8_t> g_sample_filter[1u << kSampleFilterBits] LSP_HIDDEN;
inline uint32_t sample_filter_index(uintptr_t p) {
  return static_cast<uint32_t>(((p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - kSampleFilterBits));
}
// True (and removed) when p was a sampled block.
// False when `p` is certainly not a sampled block (its filter counter is 0).
inline bool sampled_maybe(const void* p) {
  return g_sample_filter[sample_filter_index(reinterpret_cast<uintptr_t>(p))].load(std::memory_order_relaxed) != 0;
}
inline bool sampled_forget(const void* p) {
  if (LSP_LIKELY(g_sample_filter[sample_filter_index(reinterpret_cast<uintptr_t>(p))].load(std::memory_order_relaxed) == 0))
    return false;
  return sampled_forget_slow(p);
}

// ---- findleaks (findleaks.cpp; docs/findleaks.md)
// Who asked for a scan from inside the process (run --findleaks, at exit): its thread, its
// stack pointer and the callee-saved registers (rbx, rbp, r12-r15) it had.
struct ScanRequester {
  uint64_t tid = 0, sp = 0, regs[6] = {};
};
// Writer thread, rings consumed: publishes a scan descriptor (capture/scan_abi.h) in own
// memory and returns its address (0: cannot, with why). Frees the previous one.
uint64_t scan_describe(const ScanRequester* requester, char* why, size_t whylen);
// At exit (Python atexit or the libc atexit handler), with --findleaks: asks the `run`
// process to scan this one, and waits until its memory is copied. Call before writer_stop.
void findleaks_at_exit(const ScanRequester& requester);
// The exiting thread's request, served by the writer thread between naps (writer.cpp).
enum ScanState : int { kScanIdle, kScanRequested, kScanReady, kScanFailed };
extern std::atomic<int> g_scan_state LSP_HIDDEN;
extern const ScanRequester* g_scan_requester LSP_HIDDEN;
extern uint64_t g_scan_descriptor LSP_HIDDEN;  // published with kScanReady
extern char g_findleaks_name[128] LSP_HIDDEN;  // LEAKSCOPE_FINDLEAKS: the run process's socket
void writer_wake();
// After writer_stop: one more chunk holding `rec` (a definition record), written here.
void writer_append_after_stop(const uint8_t* rec, size_t n);
// Retention paths (docs/retention.md): whether the run can have them (ask before stopping),
// and the walk itself, after the stop, on the exiting thread with the GIL held.
bool retention_ready();
void retention_after_stop();
// Live walks (`snapshot`, detach), writer thread: starts a walker thread (false: none started);
// polls for its record (true once it is over; *rec may be null); frees it once written.
bool retention_start_live();
bool retention_live_done(const uint8_t** rec, size_t* n);
void retention_live_release();
// A followed fork child: a walk the parent had under way is not this process's (its record,
// if any, is left alone: the memory is the parent's copy).
void retention_live_forget_in_child();
// Runs fn(arg) on this thread with the GIL (PyGILState_Ensure); false when Python cannot run it.
bool python_run_with_gil(void (*fn)(void*), void* arg);
// Fills `r` with the calling function's caller's view (see findleaks.cpp).
__attribute__((noinline)) void capture_requester(ScanRequester* r);

// ---- control channel for `leakscope snapshot PID` (control.cpp; writer thread only)
void control_open();
void control_close();
int control_fd();  // the listening socket (-1 when none): the writer's nap polls it
enum class ControlRequest { kSnapshot, kFlush, kMark, kDetach, kStatus, kFindleaks };
int control_poll(ControlRequest* req);   // an authorised client and its request, or -1
void control_reply(int client, bool ok);  // snapshot/detach: "ok <path>" or an error; closes
void control_reply_text(int client, const char* text);  // any reply; closes

// ---- messages
void agent_message(const char* text);  // stderr once-style message + MESSAGE record
// Stops tracking (idempotent). `requester`: the stop of a normal exit (Python atexit, libc
// atexit), where run --findleaks checks reachability first.
void agent_stop(const char* reason, const ScanRequester* requester = nullptr);

// The dynamic loader's code. A non-PIE program's canonical PLT stub for malloc is what ld.so's
// own allocations call, so they reach our hooks there; its calloc'd link maps do not: its
// blocks are left untracked, all of them, or a scan would find its strings held by nothing.
extern uintptr_t g_loader_text_lo LSP_HIDDEN, g_loader_text_hi LSP_HIDDEN;
inline bool called_from_loader(const void* ret) {
  return reinterpret_cast<uintptr_t>(ret) - g_loader_text_lo < g_loader_text_hi - g_loader_text_lo;
}

// Record helpers used by hooks.
void record_alloc_native(uint8_t tag, const void* p, size_t size, void* ret, void* cfa);
void record_alloc_native_sampled(uint8_t tag, const void* p, size_t size, void* ret, void* cfa);
#define LSP_CALLER __builtin_return_address(0), __builtin_dwarf_cfa()
void record_free_native(const void* p);
void record_munmap(const void* p, size_t size);

}  // namespace leakscope::agent

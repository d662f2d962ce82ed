// Stack capture and interning. The hot path walks the Python frames (code object, instruction
// index) and/or unwinds native frames, hashes them, and looks the hash up in a per-thread
// direct-mapped cache. Only a miss takes the defs lock to intern frames and trace-tree nodes
// (heaptrack's trace tree: each new stack writes only its new edges) and to describe new code
// objects. A code object freed and its address reused is detected in the OBJ free hook
// (code_freed), which bumps a generation that empties every thread's cache.
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <sys/mman.h>

#include <cstring>

#include "agent/spin_lock.h"
#include "agent/agent.h"
#include "agent/own_memory.h"
#include "agent/intern_table.h"

namespace leakscope::agent {

namespace {
constexpr int kMaxPyFrames = 128;
constexpr int kMaxNativeFrames = 64;
constexpr int kMaxFrames = kMaxPyFrames + kMaxNativeFrames;
constexpr uint32_t kCacheSlots = 4096;  // per thread, 16 bytes each

struct CacheEntry {
  uint64_t hash;
  uint32_t stack;
  uint32_t depth;
};
struct ThreadCache {
  uint64_t generation;
  CacheEntry entries[kCacheSlots];
};

std::atomic<uint64_t> g_code_generation{1};
std::atomic<uint64_t> g_reset_generation{1};  // bumped by a detach: ids of the old capture are void

// Per-thread caches, registered so a detach can hand their memory back to the system
// (madvise: the pages read as zeros afterwards, i.e. empty caches). A thread's exit removes
// its own entries before unmapping them.
struct CacheReg {
  void* p;
  size_t n;
};
constexpr int kMaxCacheRegs = 8192;
CacheReg g_cache_regs[kMaxCacheRegs];
SpinLock g_cache_reg_lock;
void cache_reg_lock() { g_cache_reg_lock.lock(); }
void cache_reg_unlock() { g_cache_reg_lock.unlock(); }
void cache_register(void* p, size_t n) {
  cache_reg_lock();
  for (CacheReg& r : g_cache_regs)
    if (!r.p) {
      r = CacheReg{p, n};
      break;
    }
  cache_reg_unlock();
}
void cache_unregister_and_unmap(void* p, size_t n) {
  cache_reg_lock();
  for (CacheReg& r : g_cache_regs)
    if (r.p == p) r = CacheReg{nullptr, 0};
  cache_reg_unlock();
  own_unmap(p, n);
}
pthread_key_t g_cache_key;
thread_local ThreadCache* t_cache = nullptr;
uintptr_t g_agent_lo = 0, g_agent_hi = 0;

pthread_mutex_t g_defs_mutex = PTHREAD_MUTEX_INITIALIZER;

// The code table holds the address of every interned code object: own memory, which a
// reachability scan leaves out (agent/own_memory.h).
void* intern_map(size_t n) { return own_map(n); }
void intern_unmap(void* p, size_t n) { own_unmap(p, n); }
using InternTable = BasicInternTable<intern_map, intern_unmap>;

InternTable g_codes;   // (code ptr, 0) -> code id
InternTable g_frames;  // (code id, instr) or (ip, ~0) -> frame id
InternTable g_nodes;   // (parent, frame) -> stack id
uint32_t g_next_code = 1, g_next_frame = 1, g_next_node = 1;
}  // namespace
std::atomic<uint64_t> g_code_filter[kCodeFilterBits / 64];
namespace {


// Thread exit: the key destructor runs on the exiting thread, so it can clear the thread's own
// pointer. Allocations made later in the thread's teardown (other TLS destructors) then
// intern without a cache instead of touching unmapped memory or mapping a cache that would
// never be released.
thread_local bool t_caches_gone = false;
void cache_destroy(void* p) {
  t_cache = nullptr;
  t_caches_gone = true;
  if (p) cache_unregister_and_unmap(p, sizeof(ThreadCache));
}

// A thread's cache of type C (members `generation` and `entries`): mapped on first use,
// registered for a detach to hand back, and emptied when `generation` has moved on.
template <typename C>
C* thread_cache_of(C*& tls, pthread_key_t key, const std::atomic<uint64_t>& generation) {
  C* c = tls;
  if (LSP_UNLIKELY(c == nullptr)) {
    if (t_caches_gone) return nullptr;
    void* m = own_map(sizeof(C));
    if (m == nullptr) return nullptr;
    c = static_cast<C*>(m);
    c->generation = generation.load(std::memory_order_relaxed);
    tls = c;
    pthread_setspecific(key, c);
    cache_register(c, sizeof(C));
  }
  uint64_t gen = generation.load(std::memory_order_relaxed);
  if (LSP_UNLIKELY(c->generation != gen)) {
    std::memset(c->entries, 0, sizeof c->entries);
    c->generation = gen;
  }
  return c;
}

ThreadCache* thread_cache() { return thread_cache_of(t_cache, g_cache_key, g_code_generation); }

// Frames as captured, innermost first. kind 0 = Python (a = code ptr, b = instr), 1 = native ip.
struct RawFrame {
  uintptr_t a;
  uint32_t b;
  uint32_t kind;
};

}  // namespace

void to_utf8(const lsp_pystr& s, uint8_t* out, size_t cap, size_t* len) {
  size_t n = 0;
  for (size_t i = 0; i < s.length && n + 4 <= cap; ++i) {
    uint32_t ch = s.kind == 1 ? static_cast<const uint8_t*>(s.data)[i]
                  : s.kind == 2 ? static_cast<const uint16_t*>(s.data)[i]
                                : static_cast<const uint32_t*>(s.data)[i];
    if (ch < 0x80) {
      out[n++] = static_cast<uint8_t>(ch);
    } else if (ch < 0x800) {
      out[n++] = static_cast<uint8_t>(0xC0 | (ch >> 6));
      out[n++] = static_cast<uint8_t>(0x80 | (ch & 0x3F));
    } else if (ch < 0x10000) {
      out[n++] = static_cast<uint8_t>(0xE0 | (ch >> 12));
      out[n++] = static_cast<uint8_t>(0x80 | ((ch >> 6) & 0x3F));
      out[n++] = static_cast<uint8_t>(0x80 | (ch & 0x3F));
    } else {
      out[n++] = static_cast<uint8_t>(0xF0 | (ch >> 18));
      out[n++] = static_cast<uint8_t>(0x80 | ((ch >> 12) & 0x3F));
      out[n++] = static_cast<uint8_t>(0x80 | ((ch >> 6) & 0x3F));
      out[n++] = static_cast<uint8_t>(0x80 | (ch & 0x3F));
    }
  }
  *len = n;
}

namespace {

// Needs the defs lock. Returns the code id, describing the code object on first sight.
uint32_t intern_code_locked(const void* code) {
  if (auto* s = g_codes.find(reinterpret_cast<uintptr_t>(code), 0)) return s->value;
  uint32_t id = g_next_code++;
  g_codes.insert(reinterpret_cast<uintptr_t>(code), 0, id);  // on failure: only deduplication is lost
  uint32_t bit = code_bit(code);
  g_code_filter[bit / 64].fetch_or(1ull << (bit % 64), std::memory_order_relaxed);
  // The sampled free path looks at the sample filter only: mark code objects there too.
  if (g_sample_rate) sample_filter_mark(code);
  lsp_code_info ci{};
  g_py.walker->code_info(code, &ci);
  static uint8_t rec[(1u << 20) + 16384];  // guarded by the defs lock
  uint8_t* p = rec;
  *p++ = capture::kCode;
  p = capture::put_varint(p, id);
  p = capture::put_varint(p, ci.firstlineno < 0 ? 0 : static_cast<uint64_t>(ci.firstlineno));
  *p++ = static_cast<uint8_t>(ci.table_kind);
  size_t tl = ci.table_len > (1u << 20) - 16 ? 0 : ci.table_len;
  p = capture::put_bytes(p, ci.table, tl);
  uint8_t name[8192];
  size_t nl = 0;
  to_utf8(ci.filename, name, 4096, &nl);
  p = capture::put_bytes(p, name, nl);
  to_utf8(ci.qualname, name, 4096, &nl);
  p = capture::put_bytes(p, name, nl);
  emit_def_locked(rec, static_cast<size_t>(p - rec));
  return id;
}

uint32_t intern_frame_locked(const RawFrame& f) {
  uint64_t a, b;
  if (f.kind == 0) {
    a = intern_code_locked(reinterpret_cast<const void*>(f.a));
    b = f.b;
  } else {
    a = f.a;
    b = ~0ull;
  }
  if (auto* s = g_frames.find(a, b)) return s->value;
  uint32_t id = g_next_frame++;
  g_frames.insert(a, b, id);
  uint8_t rec[32];
  uint8_t* p = rec;
  if (f.kind == 0) {
    *p++ = capture::kFramePy;
    p = capture::put_varint(p, a);
    p = capture::put_varint(p, b);
  } else {
    *p++ = capture::kFrameNative;
    p = capture::put_varint(p, a);
  }
  emit_def_locked(rec, static_cast<size_t>(p - rec));
  return id;
}

// The last stack interned (frames and their node ids, outermost first), under the defs lock.
// Consecutive new stacks usually share their outer frames (same import chain, same request
// handler), so interning starts below the shared part instead of at the root.
RawFrame g_last_frames[kMaxFrames];
uint32_t g_last_nodes[kMaxFrames];
int g_last_n = 0;

// frames innermost first; the tree is built from the outermost frame.
uint32_t intern_stack(const RawFrame* frames, int n) {
  defs_lock();
  int shared = 0;
  while (shared < n && shared < g_last_n) {
    const RawFrame& a = frames[n - 1 - shared];
    const RawFrame& b = g_last_frames[shared];
    if (a.a != b.a || a.b != b.b || a.kind != b.kind) break;
    ++shared;
  }
  uint32_t parent = shared ? g_last_nodes[shared - 1] : 0;
  for (int depth = shared; depth < n; ++depth) {
    const RawFrame& f = frames[n - 1 - depth];
    uint32_t frame = intern_frame_locked(f);
    uint32_t id;
    if (auto* s = g_nodes.find(parent, frame)) {
      id = s->value;
    } else {
      id = g_next_node++;
      g_nodes.insert(parent, frame, id);
      uint8_t rec[32];
      uint8_t* p = rec;
      *p++ = capture::kStackNode;
      p = capture::put_varint(p, parent);
      p = capture::put_varint(p, frame);
      emit_def_locked(rec, static_cast<size_t>(p - rec));
    }
    g_last_frames[depth] = f;
    g_last_nodes[depth] = id;
    parent = id;
  }
  g_last_n = n;
  defs_unlock();
  return parent;
}

inline bool in_eval(uintptr_t ip) { return ip - 1 >= g_py.eval_lo && ip - 1 < g_py.eval_hi; }

// Native unwinding with a verified per-thread cache. Key: the hook caller's return address
// and CFA (its stack pointer at the call). An entry keeps, for every frame, the stack slot
// that held its return address and the value found there; a hit re-reads those slots, so a
// different call chain through the same call site is detected and unwound afresh. Slots are in
// this thread's own stack (the cache is per thread), so reading them is always safe.
constexpr int kNativeCacheSlots = 256;
struct NativeEntry {
  uintptr_t ret, cfa;
  uint32_t n;
  uint32_t stack;  // interned id when the stack is native only, else 0
  // The last merged stacks made from these native frames and Python frames hashing to py_hash
  // (a loop allocating at a few lines hits them every time: no merge, no hashing of it).
  static constexpr int kPyMemo = 4;
  uint64_t py_hash[kPyMemo];
  uint32_t py_stack[kPyMemo];
  uint32_t py_next;
  uintptr_t slot[kMaxNativeFrames];
  uintptr_t ip[kMaxNativeFrames];
};
constexpr int kNativeWays = 4;
struct NativeCache {
  NativeEntry entries[kNativeCacheSlots];
  uint32_t victim;      // round-robin replacement within a set
  uint64_t generation;  // g_reset_generation when filled
};
thread_local NativeCache* t_native_cache = nullptr;
pthread_key_t g_native_cache_key;

void native_cache_destroy(void* p) {
  t_native_cache = nullptr;
  t_caches_gone = true;
  if (p) cache_unregister_and_unmap(p, sizeof(NativeCache));
}

// Native entries hold stack ids: emptied when a detach ends their capture.
NativeCache* native_cache() { return thread_cache_of(t_native_cache, g_native_cache_key, g_reset_generation); }

// Top of this thread's stack (the end of its mapping), found once per thread with mincore:
// the upper bound of the slot search below.
thread_local uintptr_t t_stack_hi = 0;
uintptr_t stack_hi() {
  if (LSP_LIKELY(t_stack_hi)) return t_stack_hi;
  uintptr_t page = reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) & ~static_cast<uintptr_t>(4095);
  unsigned char vec;
  for (int i = 0; i < (1 << 16) && mincore(reinterpret_cast<void*>(page + 4096), 4096, &vec) == 0; ++i) page += 4096;
  t_stack_hi = page + 4096;
  return t_stack_hi;
}

// Full unwind with libunwind's cached fast trace (unw_backtrace: per-IP frame rules, so
// wrappers such as bash's xmalloc, called from hundreds of places, cost a hash lookup per
// frame, not a DWARF step under sigprocmask). Returns the frame count and, for the verified
// cache, the stack slot holding each return address: the first slot above the previous one
// that holds it (searched up to 64 KiB, never past the stack's end). `cacheable` is false when
// a slot is not found (a return address in a register, a signal frame) or frames were cut.
__attribute__((noinline)) int unwind_slow(uintptr_t* ips, uintptr_t* slots, int max, bool* cacheable, uintptr_t cfa) {
  void* raw[kMaxNativeFrames + 16];
  int got = unw_backtrace(raw, kMaxNativeFrames + 16);
  *cacheable = cfa != 0;
  int n = 0;
  for (int i = 0; i < got && n < max; ++i) {
    uintptr_t ip = reinterpret_cast<uintptr_t>(raw[i]);
    if (ip >= g_agent_lo && ip < g_agent_hi) continue;
    ips[n++] = ip;
  }
  if (n == max) *cacheable = false;  // frames beyond the limit are not verified
  if (!*cacheable || n == 0) return n;
  uintptr_t hi = stack_hi();
  uintptr_t at = cfa - sizeof(uintptr_t);  // frame 0's return address sits just below the CFA
  for (int i = 0; i < n; ++i) {
    uintptr_t limit = at + (64u << 10);
    if (limit > hi || limit < at) limit = hi;
    while (at + sizeof(uintptr_t) <= limit && *reinterpret_cast<const uintptr_t*>(at) != ips[i]) at += sizeof(uintptr_t);
    if (at + sizeof(uintptr_t) > limit) {
      *cacheable = false;
      return n;
    }
    slots[i] = at;
    at += sizeof(uintptr_t);
  }
  return n;
}

// 4-way sets: one call site reached through different callers at the same depth (a libc
// function called from two places in libc, a malloc wrapper) keeps one verified entry per
// chain instead of evicting the other on every call.
inline NativeEntry* native_set(NativeCache* c, uintptr_t r, uintptr_t f) {
  return &c->entries[(((r * 0x9E3779B97F4A7C15ull) ^ (f >> 4)) >> 56) & ~static_cast<uintptr_t>(kNativeWays - 1)];
}
// The verified entry for this call (same key, every return-address slot unchanged), or nullptr.
inline NativeEntry* native_find(NativeEntry* set, uintptr_t r, uintptr_t f) {
  for (int w = 0; w < kNativeWays; ++w) {
    NativeEntry& e = set[w];
    if (e.ret != r || e.cfa != f || e.n == 0) continue;
    uint32_t i = 0;
    while (i < e.n && *reinterpret_cast<const uintptr_t*>(e.slot[i]) == e.ip[i]) ++i;
    if (i == e.n) return &e;
  }
  return nullptr;
}

// Fills ips (innermost first) for the current call; returns the count. `entry` receives the
// cache entry used (or nullptr), so a caller can remember an interned id in it.
int unwind_native(uintptr_t* ips, int max, void* ret, void* cfa, NativeEntry** entry) {
  *entry = nullptr;
  NativeCache* c = ret && cfa ? native_cache() : nullptr;
  uintptr_t r = reinterpret_cast<uintptr_t>(ret), f = reinterpret_cast<uintptr_t>(cfa);
  if (c) {
    NativeEntry* set = native_set(c, r, f);
    if (NativeEntry* e = native_find(set, r, f)) {
      *entry = e;
      int n = static_cast<int>(e->n) < max ? static_cast<int>(e->n) : max;
      std::memcpy(ips, e->ip, sizeof(uintptr_t) * static_cast<size_t>(n));
      return n;
    }
    bool cacheable = false;
    uintptr_t slots[kMaxNativeFrames];
    int n = unwind_slow(ips, slots, max < kMaxNativeFrames ? max : kMaxNativeFrames, &cacheable, f);
    if (cacheable && n > 0 && ips[0] == r && slots[0] == f - sizeof(uintptr_t)) {
      NativeEntry& e = set[c->victim++ & (kNativeWays - 1)];
      e.ret = r;
      e.cfa = f;
      e.n = static_cast<uint32_t>(n);
      e.stack = 0;
      for (uint32_t& s : e.py_stack) s = 0;
      e.py_next = 0;
      std::memcpy(e.slot, slots, sizeof(uintptr_t) * static_cast<size_t>(n));
      std::memcpy(e.ip, ips, sizeof(uintptr_t) * static_cast<size_t>(n));
      *entry = &e;
    }
    return n;
  }
  bool cacheable;
  uintptr_t slots[kMaxNativeFrames];
  return unwind_slow(ips, slots, max < kMaxNativeFrames ? max : kMaxNativeFrames, &cacheable, 0);
}

}  // namespace

void defs_lock() { pthread_mutex_lock(&g_defs_mutex); }
void defs_unlock() { pthread_mutex_unlock(&g_defs_mutex); }
void emit_def_locked(const uint8_t* rec, size_t n) { ring_append(g_ring_defs, rec, n); }

void stacks_init(uintptr_t agent_lo, uintptr_t agent_hi) {
  g_agent_lo = agent_lo;
  g_agent_hi = agent_hi;
  pthread_key_create(&g_cache_key, cache_destroy);
  pthread_key_create(&g_native_cache_key, native_cache_destroy);
  unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}


void stacks_counts(uint32_t* frames, uint32_t* nodes, uint32_t* codes) {
  *frames = g_next_frame - 1;
  *nodes = g_next_node - 1;
  *codes = g_next_code - 1;
}

void stacks_reset() {
  defs_lock();
  g_codes.clear();
  g_frames.clear();
  g_nodes.clear();
  g_next_code = g_next_frame = g_next_node = 1;
  g_last_n = 0;
  for (auto& w : g_code_filter) w.store(0, std::memory_order_relaxed);
  g_code_generation.fetch_add(1, std::memory_order_relaxed);
  g_reset_generation.fetch_add(1, std::memory_order_relaxed);
  defs_unlock();
  // Give the caches' pages back (they read as zeros: generation 0, i.e. stale and emptied on
  // next use).
  cache_reg_lock();
  for (const CacheReg& r : g_cache_regs)
    if (r.p) madvise(r.p, r.n, MADV_DONTNEED);
  cache_reg_unlock();
}

void code_freed(const void* ptr) {
  defs_lock();
  if (auto* s = g_codes.find(reinterpret_cast<uintptr_t>(ptr), 0)) {
    s->dead = 1;
    g_last_n = 0;  // the remembered stack may hold this code object's address
    g_code_generation.fetch_add(1, std::memory_order_relaxed);
  }
  defs_unlock();
}

namespace {
inline uint64_t hash_step(uint64_t h, uint64_t a, uint64_t b) {
  h = (h ^ a) * 0x9E3779B97F4A7C15ull;
  h = (h ^ b) * 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 29);
}

// Looks the stack up in this thread's cache; on a miss builds it with `build` and interns it.
template <typename Build>
inline uint32_t cached_stack(uint64_t h, int depth, Build&& build) {
  ThreadCache* c = thread_cache();
  RawFrame frames[kMaxFrames];
  if (LSP_LIKELY(c != nullptr)) {
    CacheEntry& e = c->entries[(h >> 20) & (kCacheSlots - 1)];
    if (LSP_LIKELY(e.hash == h && e.depth == static_cast<uint32_t>(depth) && e.stack)) return e.stack;
    int n = build(frames);
    uint32_t id = intern_stack(frames, n);
    e.hash = h;
    e.depth = static_cast<uint32_t>(depth);
    e.stack = id;
    return id;
  }
  int n = build(frames);
  return intern_stack(frames, n);
}
}  // namespace

namespace {
// Verified hit for a native-only stack whose id is already known: no copies, no big arrays.
// (Entries of a capture a detach ended name ids that mean nothing now: generation check.)
inline uint32_t native_only_hit(void* ret, void* cfa) {
  NativeCache* c = t_native_cache;
  if (LSP_UNLIKELY(c == nullptr || ret == nullptr || cfa == nullptr ||
                   c->generation != g_reset_generation.load(std::memory_order_relaxed)))
    return 0;
  uintptr_t r = reinterpret_cast<uintptr_t>(ret), f = reinterpret_cast<uintptr_t>(cfa);
  const NativeEntry* e = native_find(native_set(c, r, f), r, f);
  return e ? e->stack : 0;
}
__attribute__((noinline)) uint32_t capture_stack_slow(StackMode mode, void* return_address, void* cfa);
}  // namespace

uint32_t capture_stack(StackMode mode, void* return_address, void* cfa) {
  if (mode == StackMode::kNativeOnly && (g_native || !g_py.walker)) {
    if (uint32_t id = native_only_hit(return_address, cfa)) return id;
  }
  return capture_stack_slow(mode, return_address, cfa);
}

namespace {
uint32_t capture_stack_slow(StackMode mode, void* return_address, void* cfa) {
  lsp_pyframe py[kMaxPyFrames];
  int npy = 0;
  if (mode != StackMode::kNativeOnly) {  // the caller found Python walkable (python_walkable())
    void* ts = mode == StackMode::kPyGil ? g_py.tstate_unchecked() : g_py.tstate_this_thread();
    if (ts) npy = g_py.walker->walk(ts, py, kMaxPyFrames, g_py.code_type);
  }
  if (!g_native && (mode == StackMode::kPyGil || npy > 0)) {
    // Python frames only. (With --native, PyMem calls get the native frames too, with the
    // Python frames spliced in: a C extension's function under the Python line that called it.)
    uint64_t h = 0x84222325CBF29CE4ull ^ static_cast<uint64_t>(npy);
    for (int i = 0; i < npy; ++i) h = hash_step(h, reinterpret_cast<uintptr_t>(py[i].code), static_cast<uint64_t>(py[i].instr) << 1);
    return cached_stack(h, npy, [&](RawFrame* frames) {
      for (int i = 0; i < npy; ++i) frames[i] = RawFrame{reinterpret_cast<uintptr_t>(py[i].code), py[i].instr, 0};
      return npy;
    });
  }
  // A Python process without --native: a C-level block allocated where no Python frame runs
  // (thread start-up and teardown, threads of C extensions, before the PyMem hooks are in) is
  // charged to its immediate caller, without unwinding. libunwind blocks and unblocks signals
  // around its work, and an unblock on this thread can take a process-directed signal the
  // kernel had meant for the main thread; CPython runs handlers only there, so a main thread
  // asleep in time.sleep() or accept() would never hear it (found by test_attach's `sleep`).
  if (!g_native && g_py.walker) {
    uintptr_t leaf = reinterpret_cast<uintptr_t>(return_address);
    return cached_stack(hash_step(0x5851F42D4C957F2Dull, leaf, 1), 1, [&](RawFrame* frames) {
      frames[0] = RawFrame{leaf, 0, 1};
      return 1;
    });
  }
  // Native frames, with the Python frames of each _PyEval_EvalFrameDefault call spliced in
  // where that call sits on the native stack (call order preserved).
  RawFrame merged[kMaxFrames];
  int n = 0;
  uintptr_t ips[kMaxNativeFrames];
  NativeEntry* entry = nullptr;
  int nn = unwind_native(ips, kMaxNativeFrames, return_address, cfa, &entry);
  if (npy == 0 && entry && entry->stack) return entry->stack;  // verified native-only hit
  uint64_t ph = 0;
  if (npy > 0 && entry) {  // the same native frames, and the same Python frames as last time?
    ph = 0x2545F4914F6CDD1Dull ^ static_cast<uint64_t>(npy);
    for (int i = 0; i < npy; ++i) ph = hash_step(ph, reinterpret_cast<uintptr_t>(py[i].code), static_cast<uint64_t>(py[i].instr) << 1);
    for (int k = 0; k < NativeEntry::kPyMemo; ++k)
      if (entry->py_stack[k] && entry->py_hash[k] == ph) return entry->py_stack[k];
  }
  int pi = 0;
  for (int i = 0; i < nn; ++i) {
    if (pi < npy && in_eval(ips[i])) {
      do {
        merged[n++] = RawFrame{reinterpret_cast<uintptr_t>(py[pi].code), py[pi].instr, 0};
      } while (!py[pi++].eval_end && pi < npy);
    } else {
      merged[n++] = RawFrame{ips[i], 0, 1};
    }
  }
  for (; pi < npy && n < kMaxFrames; ++pi) merged[n++] = RawFrame{reinterpret_cast<uintptr_t>(py[pi].code), py[pi].instr, 0};
  uint64_t h = 0x94D049BB133111EBull ^ static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) h = hash_step(h, merged[i].a, static_cast<uint64_t>(merged[i].b) << 1 | merged[i].kind);
  uint32_t id = cached_stack(h, n, [&](RawFrame* frames) {
    std::memcpy(frames, merged, sizeof(RawFrame) * static_cast<size_t>(n));
    return n;
  });
  if (npy == 0 && entry) entry->stack = id;
  if (npy > 0 && entry) {
    int k = static_cast<int>(entry->py_next++ % NativeEntry::kPyMemo);
    entry->py_hash[k] = ph;
    entry->py_stack[k] = id;
  }
  return id;
}
}  // namespace

void stacks_after_fork_child() { g_cache_reg_lock.reset_in_fork_child(); }

}  // namespace leakscope::agent

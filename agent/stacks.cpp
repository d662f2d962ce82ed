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

#include "agent/agent.h"
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
  CacheEntry slots[kCacheSlots];
};

std::atomic<uint64_t> g_code_generation{1};
pthread_key_t g_cache_key;
thread_local ThreadCache* t_cache = nullptr;
uintptr_t g_agent_lo = 0, g_agent_hi = 0;

pthread_mutex_t g_defs_mutex = PTHREAD_MUTEX_INITIALIZER;

void* intern_map(size_t n) {
  void* m = g_real.mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? nullptr : m;
}
void intern_unmap(void* p, size_t n) { g_real.munmap(p, n); }
using InternTable = BasicInternTable<intern_map, intern_unmap>;

InternTable g_codes;   // (code ptr, 0) -> code id
InternTable g_frames;  // (code id, instr) or (ip, ~0) -> frame id
InternTable g_nodes;   // (parent, frame) -> stack id
uint32_t g_next_code = 1, g_next_frame = 1, g_next_node = 1;
bool g_intern_failed = false;

// Bloom-ish filter of code object addresses, checked on every OBJ free.
constexpr uint32_t kCodeFilterBits = 1u << 16;
std::atomic<uint64_t> g_code_filter[kCodeFilterBits / 64];
inline uint32_t code_bit(const void* p) {
  uint64_t x = reinterpret_cast<uintptr_t>(p) >> 4;
  return static_cast<uint32_t>((x * 0x9E3779B97F4A7C15ull) >> 48);
}

void cache_destroy(void* p) {
  if (p) g_real.munmap(p, sizeof(ThreadCache));
}

ThreadCache* thread_cache() {
  ThreadCache* c = t_cache;
  if (LSP_UNLIKELY(c == nullptr)) {
    void* m = g_real.mmap(nullptr, sizeof(ThreadCache), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    c = static_cast<ThreadCache*>(m);
    c->generation = g_code_generation.load(std::memory_order_relaxed);
    t_cache = c;
    pthread_setspecific(g_cache_key, c);
  }
  uint64_t gen = g_code_generation.load(std::memory_order_relaxed);
  if (LSP_UNLIKELY(c->generation != gen)) {
    std::memset(c->slots, 0, sizeof c->slots);
    c->generation = gen;
  }
  return c;
}

// Frames as captured, innermost first. kind 0 = Python (a = code ptr, b = instr), 1 = native ip.
struct RawFrame {
  uintptr_t a;
  uint32_t b;
  uint32_t kind;
};

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

// Needs the defs lock. Returns the code id, describing the code object on first sight.
uint32_t intern_code_locked(const void* code) {
  if (auto* s = g_codes.find(reinterpret_cast<uintptr_t>(code), 0)) return s->value;
  uint32_t id = g_next_code++;
  if (!g_codes.insert(reinterpret_cast<uintptr_t>(code), 0, id)) g_intern_failed = true;
  uint32_t bit = code_bit(code);
  g_code_filter[bit / 64].fetch_or(1ull << (bit % 64), std::memory_order_relaxed);
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
  if (!g_frames.insert(a, b, id)) g_intern_failed = true;
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

// frames innermost first; the tree is built from the outermost frame.
uint32_t intern_stack(const RawFrame* frames, int n) {
  defs_lock();
  uint32_t parent = 0;
  for (int i = n - 1; i >= 0; --i) {
    uint32_t frame = intern_frame_locked(frames[i]);
    if (auto* s = g_nodes.find(parent, frame)) {
      parent = s->value;
      continue;
    }
    uint32_t id = g_next_node++;
    if (!g_nodes.insert(parent, frame, id)) g_intern_failed = true;
    uint8_t rec[32];
    uint8_t* p = rec;
    *p++ = capture::kStackNode;
    p = capture::put_varint(p, parent);
    p = capture::put_varint(p, frame);
    emit_def_locked(rec, static_cast<size_t>(p - rec));
    parent = id;
  }
  defs_unlock();
  return parent;
}

inline bool in_eval(uintptr_t ip) { return ip - 1 >= g_py.eval_lo && ip - 1 < g_py.eval_hi; }

int unwind_native(uintptr_t* ips, int max) {
  void* buf[kMaxNativeFrames + 8];
  int n = unw_backtrace(buf, kMaxNativeFrames + 8);
  int out = 0;
  int i = 0;
  // drop the agent's own frames (the hook and this function)
  while (i < n && reinterpret_cast<uintptr_t>(buf[i]) >= g_agent_lo && reinterpret_cast<uintptr_t>(buf[i]) < g_agent_hi) ++i;
  for (; i < n && out < max; ++i) ips[out++] = reinterpret_cast<uintptr_t>(buf[i]);
  return out;
}

}  // namespace

void defs_lock() { pthread_mutex_lock(&g_defs_mutex); }
void defs_unlock() { pthread_mutex_unlock(&g_defs_mutex); }
void emit_def_locked(const uint8_t* rec, size_t n) { ring_append(g_ring_defs, rec, n); }

void stacks_init(uintptr_t agent_lo, uintptr_t agent_hi) {
  g_agent_lo = agent_lo;
  g_agent_hi = agent_hi;
  pthread_key_create(&g_cache_key, cache_destroy);
  unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

bool code_filter_hit(const void* ptr) {
  uint32_t bit = code_bit(ptr);
  return (g_code_filter[bit / 64].load(std::memory_order_relaxed) >> (bit % 64)) & 1;
}

void code_freed(const void* ptr) {
  defs_lock();
  if (auto* s = g_codes.find(reinterpret_cast<uintptr_t>(ptr), 0)) {
    s->dead = 1;
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
    CacheEntry& e = c->slots[(h >> 20) & (kCacheSlots - 1)];
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

uint32_t capture_stack(StackMode mode, void* return_address) {
  lsp_pyframe py[kMaxPyFrames];
  int npy = 0;
  if (mode != StackMode::kNativeOnly && g_py_state.load(std::memory_order_relaxed) == PyState::kInstalled) {
    void* ts = mode == StackMode::kPyGil ? g_py.tstate_unchecked() : g_py.tstate_this_thread();
    if (ts) npy = g_py.walker->walk(ts, py, kMaxPyFrames, g_py.code_type);
  }
  if (mode == StackMode::kPyGil || (npy > 0 && !g_native)) {
    // Python frames only (plus, for PyMem calls with --native, the immediate native caller).
    uintptr_t leaf = mode == StackMode::kPyGil && g_native ? reinterpret_cast<uintptr_t>(return_address) : 0;
    uint64_t h = 0x84222325CBF29CE4ull ^ static_cast<uint64_t>(npy);
    if (leaf) h = hash_step(h, leaf, 1);
    for (int i = 0; i < npy; ++i) h = hash_step(h, reinterpret_cast<uintptr_t>(py[i].code), static_cast<uint64_t>(py[i].instr) << 1);
    return cached_stack(h, npy + (leaf ? 1 : 0), [&](RawFrame* frames) {
      int n = 0;
      if (leaf) frames[n++] = RawFrame{leaf, 0, 1};
      for (int i = 0; i < npy; ++i) frames[n++] = RawFrame{reinterpret_cast<uintptr_t>(py[i].code), py[i].instr, 0};
      return n;
    });
  }
  // Native frames, with the Python frames of each _PyEval_EvalFrameDefault call spliced in
  // where that call sits on the native stack (call order preserved).
  RawFrame merged[kMaxFrames];
  int n = 0;
  uintptr_t ips[kMaxNativeFrames];
  int nn = unwind_native(ips, kMaxNativeFrames);
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
  return cached_stack(h, n, [&](RawFrame* frames) {
    std::memcpy(frames, merged, sizeof(RawFrame) * static_cast<size_t>(n));
    return n;
  });
}

}  // namespace leakscope::agent

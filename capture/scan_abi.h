// The scan descriptor: what the agent publishes in its own memory for `findleaks` and
// `heapdump` (docs/findleaks.md), read by the CLI out of the stopped process (or a heap dump).
// Plain fixed-layout structs (both sides are built from this tree, x86-64 only); every value
// is checked by the reader, never trusted: a dump file is outside input.
//
//   +---------------------------+  descriptor address (in an agent mapping)
//   | ScanDescriptor            |
//   +---------------------------+  + mmaps_off
//   | ScanMmap   [n_mmaps]      |  live anonymous mappings the agent tracks (mmap blocks)
//   +---------------------------+  + arenas_off
//   | ScanRange  [n_arenas]     |  regions from the interpreter's arena allocator
//   +---------------------------+  + own_off
//   | ScanRange  [n_own]        |  leakscope's own mappings: never roots
//   +---------------------------+  size
#pragma once
#include <cstddef>
#include <cstdint>

namespace leakscope::capture {

inline constexpr char kScanMagic[8] = {'L', 'S', 'S', 'C', 'A', 'N', '\0', '\1'};
inline constexpr uint32_t kScanAbiVersion = 1;
inline constexpr uint32_t kScanYoungSlots = 256;  // agent/aggregate.cpp's young-block cache
inline constexpr uint64_t kScanMaxListEntries = 1u << 24;

enum ScanFlag : uint32_t {
  kScanAttached = 1,        // tracking began in a running process (`attach`)
  kScanForeignMalloc = 2,   // the program's malloc is not glibc's: its blocks are untracked
  kScanExit = 4,            // requested by the agent itself when tracking stopped (run --findleaks)
  kScanPython = 8,          // the PyMem wrappers are installed
};

struct ScanRange {
  uint64_t lo, hi;
};
struct ScanMmap {
  uint64_t addr, size;
  uint32_t stack, flags;
};
// A ring's state: bytes [tail, head) at data[(i) & mask] are published and not yet consumed.
struct ScanRing {
  uint64_t data, mask, head_addr, tail;  // head is read at head_addr when the process is stopped
};
struct ScanTable {
  uint64_t slots, nslots;  // capture::LiveEntry[nslots], empty slots have addr 0
};

struct ScanDescriptor {
  char magic[8];
  uint32_t version, size;  // size: the descriptor and its lists, in bytes
  uint32_t flags, py_minor;  // ScanFlag bits; 3.py_minor when kScanPython, else 0
  uint64_t pid, writer_tid;
  // The thread that asked for the scan itself (kScanExit): its stack from requester_sp and
  // the callee-saved registers it had on entry (rbx, rbp, r12-r15) replace what ptrace sees.
  uint64_t requester_tid, requester_sp, requester_regs[6];
  uint64_t tls_static_size, tls_static_align, pthread_size;  // glibc's, for each thread's TLS root
  // pthread keys from 32 up: struct pthread's `specific` array (offset, entries) points to
  // second-level arrays of key_level2_size bytes that libc callocs without our hooks.
  uint64_t pthread_specific_off, pthread_specific_n, key_level2_size;
  int64_t in_hook_tls_offset;  // &t_in_hook - thread pointer: a thread inside a hook is not stopped there
  uint64_t py_type_type;       // &PyType_Type
  uint64_t time_ns;            // since tracking started
  ScanTable live[2];           // [0] P (MEM/OBJ), [1] N (malloc family, RAW)
  uint64_t young[2];           // LiveEntry[kScanYoungSlots] each
  uint64_t last_addr[2], last_stack[2];  // event delta state after the last consumed record
  ScanRing ring[2];
  uint64_t mmaps_off, n_mmaps, arenas_off, n_arenas, own_off, n_own;
  char agent_path[4096];
  char capture_path[4096];
};
static_assert(sizeof(ScanRange) == 16 && sizeof(ScanMmap) == 24 && sizeof(ScanRing) == 32, "fixed layout");
static_assert(offsetof(ScanDescriptor, live) % 8 == 0, "fixed layout");

}  // namespace leakscope::capture

// From a copy of a stopped process (heap_image.h) to what the reachability scan works on
// (docs/findleaks.md): the tracked blocks (the agent's live tables, its young-block cache and
// the events still in its rings), the roots (module data, stacks, registers, TLS, the
// interpreter's memory that is not a block, and in conservative mode every other writable
// byte that is not leakscope's), and the Python layout of the running version. Every value
// read from the image is checked: a hostile dump gives ModelError, never a crash or unbounded
// memory. Not thread-safe.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "analysis/heap_image.h"
#include "capture/scan_abi.h"
#include "python/layout.h"

namespace leakscope::analysis {

class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HeapBlock {
  uint64_t addr = 0, size = 0;  // size 0 (malloc(0)): a pointer to its start still points to it
  uint64_t extent() const { return size ? size : 1; }
  uint32_t stack = 0;
  uint8_t layer = 0;  // analysis::Layer
  uint8_t obj = 0;    // a PyMem OBJ-domain block (may hold a PyObject)
};

// kMallocState: the C library's data, where glibc's main arena keeps pointers to chunk
// headers (top, bins); kUntracked: conservative roots, which hold the other arenas' state.
// A pointer from these to the header of the chunk after a malloc block lands in that
// block's last bytes and is the allocator's link, not a reference (Reach).
enum class RootKind : uint8_t { kModule, kStack, kTls, kInterpreter, kUntracked, kMallocState };
struct RootRange {
  uint64_t lo = 0, hi = 0;
  RootKind kind = RootKind::kModule;
};

// Things the model could not do exactly, for the report to say (codes, not sentences).
enum class ModelNote : uint8_t {
  kConservativeAttached,   // roots include every untracked byte: attached to a running process
  kConservativeForeign,    // ... the program's malloc is not glibc's
  kNoPythonLayout,         // the interpreter's version has no layout: objects not told apart
  kArenaNotWalked,         // a pymalloc arena's pools did not validate: scanned conservatively
  kBacklogMalformed,       // the rings held a malformed record: later events ignored
  kOverlappingBlocks,      // blocks that overlapped another were dropped
};

struct HeapModel {
  capture::ScanDescriptor desc{};
  std::vector<HeapBlock> blocks;    // sorted by address, non-overlapping
  std::vector<RootRange> roots;     // sorted by address, may overlap
  std::vector<uint64_t> root_words; // register values
  const lsp_py_layout* py = nullptr;
  bool conservative = false;
  uint64_t arenas = 0, arena_root_slots = 0;  // pymalloc arenas walked, untracked objects in them
  std::vector<std::pair<ModelNote, uint64_t>> notes;  // (what, how many)
  void note(ModelNote n, uint64_t count = 1);
};

// Throws ModelError (one line) when the image is not a leakscope process copy.
HeapModel build_model(const HeapImage& image);

}  // namespace leakscope::analysis

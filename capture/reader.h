// Capture reader: validates the header and chunks, decompresses, and decodes records into a
// visitor. Rejects corrupt or hostile input by throwing CaptureError (one clear line); a file
// cut short by a kill is accepted up to its last complete chunk (truncated() says so).
// Memory is bounded by the largest chunk (64 MiB) plus what the visitor keeps; reading a forked
// child's capture also holds one chunk per parent capture on its way (at most kMaxParentDepth).
// Not thread-safe; one reader per file.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "capture/byte_cursor.h"
#include "capture/format.h"

namespace leakscope::capture {

class CaptureError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A record payload's cursor (FINDLEAKS, RETAIN, TASKS): every problem is one CaptureError line,
// "corrupt NAME record: what at byte N".
struct PayloadFail {
  const char* record;
  [[noreturn]] void operator()(const std::string& what, size_t at) const {
    throw CaptureError(std::string("corrupt ") + record + " record: " + what + " at byte " + std::to_string(at));
  }
};
class PayloadCursor : public ByteCursor<PayloadFail> {
 public:
  PayloadCursor(const std::string& payload, const char* record)
      : ByteCursor(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), PayloadFail{record}) {}
  // A count of items that take at least one byte each: never more than the bytes left.
  size_t count() {
    uint64_t n = varint();
    if (n > left()) fail("a count larger than the record");
    return static_cast<size_t>(n);
  }
  // An index into a table of n entries.
  uint32_t index(size_t n, const char* what) {
    uint64_t i = varint();
    if (i >= n) fail(std::string("a ") + what + " index out of range");
    return static_cast<uint32_t>(i);
  }
};

struct Module {
  std::string path;
  uint64_t load_bias = 0;
  std::string build_id;
  std::vector<std::pair<uint64_t, uint64_t>> segments;  // (vaddr, memsz)
};
struct Code {
  uint64_t id = 0;
  uint64_t firstlineno = 0;
  uint8_t table_kind = 0;
  std::string table, filename, qualname;
};
// Aggregate-mode snapshot: absolute live totals of the sites that changed since the previous
// snapshot; key = stack * 4 + layer (0 python, 1 pymem-raw, 2 malloc, 3 mmap).
struct Snapshot {
  uint64_t time_ns = 0, live_bytes = 0, peak_bytes = 0, alloc_count = 0, alloc_bytes = 0, events = 0;
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> changed;  // (key, bytes, count)
};

// Receives decoded records in file order. Event addresses are absolute (deltas undone). Every
// callback does nothing unless overridden: a visitor names only the records it wants.
class Visitor {
 public:
  virtual ~Visitor() = default;
  virtual void alloc(Stream stream, Tag tag, uint64_t addr, uint64_t size, uint64_t stack) {}
  virtual void free(Stream stream, uint64_t addr) {}
  virtual void arena(bool alloc, uint64_t addr, uint64_t size) {}
  virtual void munmap(uint64_t addr, uint64_t size) {}
  virtual void tick(uint64_t ns) {}
  virtual void frame_py(uint64_t id, uint64_t code_id, uint64_t instr) {}
  virtual void frame_native(uint64_t id, uint64_t ip) {}
  virtual void stack_node(uint64_t id, uint64_t parent, uint64_t frame) {}
  virtual void code(Code&& code) {}
  virtual void module(Module&& module) {}
  virtual void info(std::string&& key, std::string&& value) {}
  virtual void stats(const Stats& s) {}
  // Python's cyclic garbage collector (GCSTATS), written next to each STATS record.
  virtual void gcstats(const GcStats& g) {}
  virtual void stop(uint64_t ns, std::string&& reason) {}
  virtual void message(std::string&& text) {}
  virtual void snapshot(Snapshot&& s) {}
  // A reachability check's result (FINDLEAKS): its payload, decoded by analysis/findleaks_record.
  virtual void findleaks(std::string&& payload) {}
  // Retention paths (RETAIN): its payload, decoded by analysis/retention_record.
  virtual void retention(std::string&& payload) {}
  // Pending asyncio tasks (TASKS): its payload, decoded by analysis/tasks_record.
  virtual void tasks(std::string&& payload) {}
  // After the last record of each chunk (a chunk's TICK comes before its events).
  virtual void chunk_end() {}
  // The encoded bytes (tag included) of each D-stream record, after its decoded callback:
  // lets a rewriter (the agent's thinning) copy definitions without re-encoding them.
  virtual void def_record(uint8_t tag, const uint8_t* bytes, size_t n) {}
};

// How far read_all has got, told after each chunk: the reader's name (the path, for a caller
// reading several files), the bytes of the file consumed so far and the file's size. The
// reader prints nothing itself; the caller decides what to show.
using ReadProgress = std::function<void(const std::string& name, uint64_t done, uint64_t size)>;

// How many parent captures deep a forked child's capture may go (a child of a child ...).
inline constexpr size_t kMaxParentDepth = 64;

class Reader {
 public:
  explicit Reader(const std::string& path);  // throws CaptureError
  // Reads an already open descriptor (duplicated; the caller keeps its own). `name` is for
  // messages only.
  Reader(int fd, const std::string& name);  // throws CaptureError
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const FileHeader& header() const { return header_; }
  // Decodes the whole file into `v`. Throws CaptureError on corruption.
  void read_all(Visitor& v);
  // Called by read_all after each chunk (one call per chunk of up to 64 MiB: the hot loop
  // does not see it). Null: no calls.
  void set_progress(ReadProgress progress) { progress_ = std::move(progress); }
  bool truncated() const { return truncated_; }
  // A forked child's capture (header flag kFlagForkedChild) continues its parent capture's
  // definitions: read_all first passes the parent's frames, stacks, codes (those it had made at
  // the fork) and modules to the visitor, read from the parent's file in this file's directory
  // (reader_parent.cpp). Skipping the parent only continues the ids after its counts: for the
  // agent's thinning rewrite, which copies this file's own records and needs no parent.
  void set_skip_parent(bool skip) { skip_parent_ = skip; }
  // Cheap completeness check for `run`: walks the chunk headers and decodes only the last
  // complete chunk (ids not checked). Returns true when it holds a STOP record and the file
  // ends at a chunk boundary.
  bool ends_with_clean_stop();
  uint64_t chunks() const { return chunks_; }
  uint64_t events() const { return events_; }
  uint64_t file_size() const { return file_size_; }

 private:
  void open_checked(const std::string& name);
  void decode_chunk(const uint8_t* p, size_t n, uint64_t file_offset, Visitor& v);
  // An INFO parent_capture / parent_defs record of a forked child's capture (reader_parent.cpp).
  // Returns a format problem for the caller to report at the record's offset, or null; a
  // parent that cannot be read throws its own CaptureError.
  const char* parent_info(const std::string& key, const std::string& value, Visitor& v);
  void read_parent(uint64_t frames, uint64_t stacks, uint64_t codes, Visitor& v);
  int fd_ = -1;
  std::string name_;
  ReadProgress progress_;
  FileHeader header_{};
  bool truncated_ = false;
  uint64_t chunks_ = 0, events_ = 0, file_size_ = 0;
  uint64_t next_frame_id_ = 1, next_stack_id_ = 1, next_code_id_ = 1;
  bool lenient_ = false;
  // Forked children: the parent's base name (INFO parent_capture), whether parent_defs was
  // seen, and the chain of files read to get here (this one last, as (st_dev, st_ino)) with
  // its length bounded by kMaxParentDepth, so a loop or a very deep tree is an error.
  bool skip_parent_ = false;
  bool parent_defs_seen_ = false;
  std::string parent_capture_;
  uint64_t parent_pid_ = 0;  // INFO parent_pid (0: none): the parent capture must be that process's
  size_t parent_depth_ = 0;  // parent captures beneath this one, once read
  std::vector<std::pair<uint64_t, uint64_t>> chain_;
  // delta state per event stream (index: stream - 2)
  uint64_t last_addr_[2] = {0, 0};
  uint64_t last_stack_[2] = {0, 0};
};

}  // namespace leakscope::capture

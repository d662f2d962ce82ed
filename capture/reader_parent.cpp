// Forked children (format.md, "Forked children"; docs/process-trees.md): a child's capture does
// not repeat the definitions its parent had made when it forked, it names them. Reader::read_all
// reads that prefix of the parent capture here, at the child's INFO parent_defs record, so the
// visitor sees the parent's definitions first and the child's own ids continue after them.
#include "capture/reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <mutex>
#include <memory>

namespace leakscope::capture {
namespace {

// An error that already names its link of the chain ("capture X continues ... Y"): passed up
// as it is, so a failing grandparent is one line, not one wrapper per level.
class ParentError : public CaptureError {
 public:
  using CaptureError::CaptureError;
};

[[noreturn]] void parent_fail(const std::string& child, const std::string& parent, const std::string& why) {
  throw ParentError("capture " + child + " continues its parent capture " + parent +
                    " (forked from it), which cannot be read: " + why);
}

// The parent is looked for beside the child only: a tree of captures can be moved as a whole,
// and a hostile capture cannot make the reader open a path of its choosing. Control characters
// are refused so that the name fits in a one-line error.
bool plain_file_name(const std::string& s) {
  if (s.empty() || s.size() > 255 || s == "." || s == "..") return false;
  for (unsigned char ch : s)
    if (ch == '/' || ch < 0x20 || ch == 0x7f) return false;  // '\0' included: open() would cut there
  return true;
}

// "FRAMES STACKS CODES": three decimal counts, one space apart, each at most 2^32 (the ids the
// visitors keep are 32-bit; the bound also keeps the digit loop from overflowing).
bool parse_counts(const std::string& s, uint64_t out[3]) {
  size_t i = 0;
  for (int k = 0; k < 3; ++k) {
    if (k > 0 && (i >= s.size() || s[i++] != ' ')) return false;
    size_t start = i;
    uint64_t n = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      n = n * 10 + static_cast<uint64_t>(s[i] - '0');
      if (n > (1ull << 32)) return false;
    }
    if (i == start) return false;
    out[k] = n;
  }
  return i == s.size();
}

// The directory part of a reader's name (the path it was opened by, or the fd constructor's
// name): "." when it has none.
std::string beside(const std::string& name, const std::string& file) {
  size_t slash = name.rfind('/');
  if (slash == std::string::npos) return "./" + file;
  return name.substr(0, slash + 1) + file;
}

// Passes on what the child inherited: the parent's frames, stack nodes and code objects up to
// the fork's counts, and its modules (a MODULE record has no id to count it by; a module the
// parent loaded later only adds a mapping the child's addresses do not fall in). The rest is the
// parent's own history (events, snapshots, STATS, INFO, ...), never the child's; def_record is
// not passed on either: a rewriter copies the child's own records, which name the parent.
class ParentPrefix : public Visitor {
 public:
  ParentPrefix(Visitor& out, uint64_t frames, uint64_t stacks, uint64_t codes)
      : out_(out), frames_(frames), stacks_(stacks), codes_(codes) {}
  void frame_py(uint64_t id, uint64_t code_id, uint64_t instr) override {
    if (id <= frames_) out_.frame_py(id, code_id, instr);
  }
  void frame_native(uint64_t id, uint64_t ip) override {
    if (id <= frames_) out_.frame_native(id, ip);
  }
  void stack_node(uint64_t id, uint64_t parent, uint64_t frame) override {
    if (id > stacks_) return;
    // The reader promises every stack node names a frame the visitor already has; a parent
    // whose early stack names a frame made after the fork would break that promise.
    if (frame > frames_)
      throw CaptureError("its stack " + std::to_string(id) + " names frame " + std::to_string(frame) +
                         ", made after the fork");
    out_.stack_node(id, parent, frame);
  }
  void code(Code&& c) override {
    if (c.id <= codes_) out_.code(std::move(c));
  }
  void module(Module&& m) override { out_.module(std::move(m)); }

 private:
  Visitor& out_;
  uint64_t frames_, stacks_, codes_;
};

// Every definition a parent capture passes on (its own and its parents'), in order: a tree's
// report reads one parent once for all its children (a gunicorn master's 100,000 stack nodes
// were read again for each worker).
struct ParentDefs {
  struct Rec {
    uint8_t kind;  // 0 frame_py, 1 frame_native, 2 stack_node, 3 code, 4 module
    uint64_t a, b, c;
  };
  std::vector<Rec> recs;
  std::vector<Code> codes;
  std::vector<Module> modules;
  uint64_t next_frame = 1, next_stack = 1, next_code = 1;
  size_t bytes = 0;
  size_t depth = 0;  // parent captures beneath this one (the depth bound holds with the cache too)
};

class Recorder : public Visitor {
 public:
  explicit Recorder(ParentDefs& d) : d_(d) {}
  void frame_py(uint64_t id, uint64_t code_id, uint64_t instr) override { d_.recs.push_back({0, id, code_id, instr}); }
  void frame_native(uint64_t id, uint64_t ip) override { d_.recs.push_back({1, id, ip, 0}); }
  void stack_node(uint64_t id, uint64_t parent, uint64_t frame) override { d_.recs.push_back({2, id, parent, frame}); }
  void code(Code&& c) override {
    d_.bytes += c.table.size() + c.filename.size() + c.qualname.size() + 64;
    d_.recs.push_back({3, d_.codes.size(), 0, 0});
    d_.codes.push_back(std::move(c));
  }
  void module(Module&& m) override {
    d_.bytes += m.path.size() + m.build_id.size() + m.segments.size() * 16 + 64;
    d_.recs.push_back({4, d_.modules.size(), 0, 0});
    d_.modules.push_back(std::move(m));
  }

 private:
  ParentDefs& d_;
};

// The last few parents read, by file identity; an entry is used only while the file is the same
// (size and modification time: a parent still being written is read again).
struct ParentKey {
  uint64_t dev, ino, size;
  int64_t mtime_ns;
  bool operator==(const ParentKey&) const = default;
};
std::mutex g_parent_cache_mutex;
std::vector<std::pair<ParentKey, std::shared_ptr<const ParentDefs>>> g_parent_cache;  // most recent last
constexpr size_t kParentCacheEntries = 4;

struct FdCloser {
  int fd;
  ~FdCloser() { close(fd); }
};

}  // namespace

const char* Reader::parent_info(const std::string& key, const std::string& value, Visitor& v) {
  if (key == "parent_capture") {
    if (!parent_defs_seen_) parent_capture_ = value;  // read when parent_defs comes
    return nullptr;
  }
  if (key == "parent_pid") {
    if (!parent_defs_seen_) parent_pid_ = std::strtoull(value.c_str(), nullptr, 10);
    return nullptr;
  }
  if (key != "parent_defs") return nullptr;
  if (parent_defs_seen_) return "a second parent_defs record";
  // The counts give the ids the child's own definitions start after: none may come first.
  if (next_frame_id_ != 1 || next_stack_id_ != 1 || next_code_id_ != 1) return "parent_defs after definitions";
  uint64_t n[3];
  if (!parse_counts(value, n)) return "parent_defs is not three decimal counts";
  if (parent_capture_.empty()) return "parent_defs without a parent_capture record before it";
  if (!plain_file_name(parent_capture_)) return "parent_capture is not a plain file name";
  parent_defs_seen_ = true;
  if (!skip_parent_) read_parent(n[0], n[1], n[2], v);
  next_frame_id_ = n[0] + 1;
  next_stack_id_ = n[1] + 1;
  next_code_id_ = n[2] + 1;
  return nullptr;
}

void Reader::read_parent(uint64_t frames, uint64_t stacks, uint64_t codes, Visitor& v) {
  const std::string path = beside(name_, parent_capture_);
  // chain_ holds this file and the children that led to it: its parent would be level size().
  if (chain_.size() > kMaxParentDepth)
    parent_fail(name_, path, "more than " + std::to_string(kMaxParentDepth) + " parent captures deep");
  // O_NOFOLLOW: a symbolic link beside the capture could lead anywhere. O_NONBLOCK, O_NOCTTY:
  // opening a FIFO or a terminal a hostile capture names must neither wait for a writer nor
  // become our controlling terminal (fstat refuses anything but a regular file next).
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) parent_fail(name_, path, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
  FdCloser closer{fd};
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) parent_fail(name_, path, "it is not a regular file");
  const std::pair<uint64_t, uint64_t> id{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  for (const auto& c : chain_)
    if (c == id) parent_fail(name_, path, "it is this capture or one that continues it (a loop)");
  try {
    Reader parent(fd, path);
    // The same name can hold another run's capture (the file was removed and the run done
    // again): only the capture of the very process that forked this one, begun before it.
    if (parent_pid_ && parent.header().pid != parent_pid_)
      parent_fail(name_, path, "it is process " + std::to_string(parent.header().pid) + "'s capture, not process " +
                                   std::to_string(parent_pid_) + "'s (a capture of another run?)");
    if (parent.header().start_time_ns > header_.start_time_ns)
      parent_fail(name_, path, "it began after this capture (a capture of another run?)");
    const ParentKey key{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                        static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
    std::shared_ptr<const ParentDefs> defs;
    {
      std::lock_guard<std::mutex> g(g_parent_cache_mutex);
      for (const auto& [k, d] : g_parent_cache)
        if (k == key) defs = d;
    }
    if (!defs) {
      auto fresh = std::make_shared<ParentDefs>();
      parent.chain_ = chain_;
      parent.chain_.push_back(id);
      Recorder rec(*fresh);
      // A parent cut short (still running, or killed) is fine: only its early definitions count.
      parent.read_all(rec);
      fresh->next_frame = parent.next_frame_id_;
      fresh->next_stack = parent.next_stack_id_;
      fresh->next_code = parent.next_code_id_;
      fresh->depth = parent.parent_depth_;
      defs = fresh;
      std::lock_guard<std::mutex> g(g_parent_cache_mutex);
      if (g_parent_cache.size() >= kParentCacheEntries) g_parent_cache.erase(g_parent_cache.begin());
      g_parent_cache.emplace_back(key, defs);
    }
    if (chain_.size() + defs->depth > kMaxParentDepth)
      parent_fail(name_, path, "more than " + std::to_string(kMaxParentDepth) + " parent captures deep");
    parent_depth_ = defs->depth + 1;
    if (defs->next_frame <= frames || defs->next_stack <= stacks || defs->next_code <= codes)
      parent_fail(name_, path,
                  "it has " + std::to_string(defs->next_frame - 1) + " frames, " +
                      std::to_string(defs->next_stack - 1) + " stacks and " +
                      std::to_string(defs->next_code - 1) + " code objects, fewer than the " +
                      std::to_string(frames) + ", " + std::to_string(stacks) + " and " + std::to_string(codes) +
                      " made before the fork");
    ParentPrefix prefix(v, frames, stacks, codes);
    for (const ParentDefs::Rec& r : defs->recs) {
      switch (r.kind) {
        case 0: prefix.frame_py(r.a, r.b, r.c); break;
        case 1: prefix.frame_native(r.a, r.b); break;
        case 2: prefix.stack_node(r.a, r.b, r.c); break;
        case 3: prefix.code(Code(defs->codes[r.a])); break;
        default: prefix.module(Module(defs->modules[r.a])); break;
      }
    }
  } catch (const ParentError&) {
    throw;
  } catch (const CaptureError& e) {
    parent_fail(name_, path, e.what());
  }
}

}  // namespace leakscope::capture

// Unit tests for forked children's captures (capture/format.md, "Forked children";
// capture/reader_parent.cpp): a child's capture names its parent capture and the definitions
// the parent had made at the fork; the reader passes those on first and continues the child's
// ids after them. A hostile or broken parent is one error line naming it, never a crash, a hang
// or a file outside the child's directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "analysis/replay.h"
#include "capture/format.h"
#include "capture/reader.h"
#include "capture_builder.h"

namespace {

using B = CaptureBuilder;
using Bytes = std::vector<uint8_t>;

void info(Bytes& d, const std::string& k, const std::string& v) { d.push_back(kInfo), B::str(d, k), B::str(d, v); }
void frame_py(Bytes& d, uint64_t code, uint64_t instr) { d.push_back(kFramePy), B::put(d, code), B::put(d, instr); }
void frame_native(Bytes& d, uint64_t ip) { d.push_back(kFrameNative), B::put(d, ip); }
void stack(Bytes& d, uint64_t parent, uint64_t frame) { d.push_back(kStackNode), B::put(d, parent), B::put(d, frame); }
void code(Bytes& d, uint64_t id, const std::string& file) {
  d.push_back(kCode), B::put(d, id), B::put(d, 1), d.push_back(kLocations311), B::str(d, ""), B::str(d, file),
      B::str(d, "f");
}
void module(Bytes& d, const std::string& path) {
  d.push_back(kModule), B::str(d, path), B::put(d, 0), B::str(d, ""), B::put(d, 0);
}
void malloc_event(Bytes& n, int64_t addr_delta, uint64_t size, int64_t stack_delta) {
  n.push_back(kAllocMalloc), B::sput(n, addr_delta), B::put(n, size), B::sput(n, stack_delta);
}

// A scratch directory holding a tree of captures; removed with everything in it.
struct Dir {
  std::string path;
  Dir() {
    char t[] = "/tmp/leakscope-fork-test-XXXXXX";
    EXPECT_NE(mkdtemp(t), nullptr);
    path = t;
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string put(const std::string& name, const Bytes& b) const {
    std::string p = path + "/" + name;
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, b.data(), b.size()), static_cast<ssize_t>(b.size()));
    close(fd);
    return p;
  }
};

// Replays what it is given and keeps the encoded definition records it was shown (the
// thinning rewrite copies those: only the child's own may appear).
struct Rec : leakscope::analysis::Replay {
  std::vector<uint8_t> def_tags;
  std::vector<uint64_t> alloc_stacks;
  void def_record(uint8_t tag, const uint8_t*, size_t) override { def_tags.push_back(tag); }
  void alloc(Stream s, Tag t, uint64_t a, uint64_t n, uint64_t st) override {
    alloc_stacks.push_back(st);
    Replay::alloc(s, t, a, n, st);
  }
};

// The parent: codes 1-2, frames 1-2, stacks 1-2 and a module before the fork, then (with
// `after_fork`) code 3, frame 3, stack 3 and a second module; its own INFO, events and STOP.
B parent(bool after_fork) {
  B b;
  auto& d = b.sec(kStreamDefs);
  info(d, "python_version", "3.12.1");
  module(d, "/bin/parent");
  code(d, 1, "app.py"), code(d, 2, "lib.py");
  frame_py(d, 1, 4), frame_native(d, 0x401000);
  stack(d, 0, 1), stack(d, 1, 2);
  auto& n = b.sec(kStreamNative);
  malloc_event(n, 0x5000, 64, 2);
  b.chunk();
  auto& d2 = b.sec(kStreamDefs);
  if (after_fork) {
    code(d2, 3, "late.py");
    frame_py(d2, 3, 8);
    stack(d2, 2, 3);
    module(d2, "/lib/late.so");
  }
  d2.push_back(kStop), B::put(d2, 9), B::str(d2, "exit");
  b.chunk();
  return b;
}

// The child: the three INFO records first (`defs` as given), then code 3, frame 3 and stack 3
// (under the parent's stack 2), and events on the parent's stack 2 and its own stack 3.
B child(const std::string& parent_name, const std::string& defs = "2 2 2", uint32_t flags = kFlagForkedChild) {
  B b;
  b.flags(flags);
  auto& d = b.sec(kStreamDefs);
  info(d, "parent_capture", parent_name), info(d, "parent_pid", "4242"), info(d, "parent_defs", defs);
  code(d, 3, "child.py");
  frame_py(d, 3, 2);
  stack(d, 2, 3);
  auto& n = b.sec(kStreamNative);
  malloc_event(n, 0x9000, 100, 2);
  malloc_event(n, 0x100, 50, 1);
  auto& d2 = b.sec(kStreamDefs);  // a new section: sec() may move the earlier ones
  d2.push_back(kStop), B::put(d2, 5), B::str(d2, "exit");
  b.chunk();
  return b;
}

// Reads `path` and returns the error line, or "" when it read.
std::string read_error(const std::string& path, bool skip_parent = false) {
  try {
    Reader r(path);
    r.set_skip_parent(skip_parent);
    Rec rec;
    r.read_all(rec);
  } catch (const CaptureError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    return what.empty() ? "(empty error)" : what;
  }
  return "";
}

}  // namespace

TEST(ForkedChild, ReadsItsParentsDefinitionsFirstAndContinuesItsIds) {
  Dir dir;
  dir.put("parent.lsc", parent(false).bytes());
  std::string path = dir.put("child.lsc", child("parent.lsc").bytes());
  Reader r(path);
  Rec rec;
  r.read_all(rec);
  EXPECT_FALSE(r.truncated());
  ASSERT_EQ(rec.frames().size(), 4u);  // index 0 is none: the parent's 1-2, the child's 3
  EXPECT_TRUE(rec.frames()[2].native);
  EXPECT_EQ(rec.frames()[2].code_or_ip, 0x401000u);
  EXPECT_EQ(rec.frames()[3].code_or_ip, 3u);
  ASSERT_EQ(rec.nodes().size(), 4u);
  EXPECT_EQ(rec.nodes()[2].parent, 1u);
  EXPECT_EQ(rec.nodes()[3].parent, 2u) << "the child's stack continues the parent's";
  EXPECT_EQ(rec.nodes()[3].frame, 3u);
  ASSERT_EQ(rec.codes().size(), 3u);
  EXPECT_EQ(rec.codes().at(1).filename, "app.py");
  EXPECT_EQ(rec.codes().at(3).filename, "child.py");
  ASSERT_EQ(rec.modules().size(), 1u);
  EXPECT_EQ(rec.modules()[0].path, "/bin/parent");
  // Only the child's events, STOP and INFO records: the parent's history is not the child's.
  EXPECT_EQ(rec.alloc_stacks, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(rec.live_bytes(), 150u);
  EXPECT_EQ(rec.info().count("python_version"), 0u);
  EXPECT_EQ(rec.info().at("parent_defs"), "2 2 2");
  EXPECT_EQ(rec.info().at("parent_pid"), "4242");
  EXPECT_TRUE(rec.stopped());
  EXPECT_EQ(rec.last_ns(), 5u) << "the child's STOP, not the parent's";
  // The encoded records a rewriter copies are the child's own: 3 INFO, CODE, FRAME, STACK, STOP.
  EXPECT_EQ(rec.def_tags, (std::vector<uint8_t>{kInfo, kInfo, kInfo, kCode, kFramePy, kStackNode, kStop}));

  // The fd constructor looks beside its `name`.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Reader byfd(fd, path);
  close(fd);
  Rec rec2;
  byfd.read_all(rec2);
  EXPECT_EQ(rec2.nodes().size(), 4u);
}

TEST(ForkedChild, OnlyTheDefinitionsMadeBeforeTheForkArePassedOn) {
  Dir dir;
  dir.put("parent.lsc", parent(true).bytes());
  Reader r(dir.put("child.lsc", child("parent.lsc").bytes()));
  Rec rec;
  r.read_all(rec);
  ASSERT_EQ(rec.frames().size(), 4u);
  EXPECT_EQ(rec.frames()[3].instr, 2u) << "frame 3 is the child's, not the parent's later one";
  ASSERT_EQ(rec.nodes().size(), 4u);
  EXPECT_EQ(rec.codes().at(3).filename, "child.py");
  ASSERT_EQ(rec.modules().size(), 2u) << "every module of the parent";
  EXPECT_EQ(rec.modules()[1].path, "/lib/late.so");
}

TEST(ForkedChild, ParentsChainAndTheDepthIsBounded) {
  // c0 has frame 1 and stack 1; c1 ... cN each continue the previous with "1 1 0" and add
  // nothing: c64 reads through 64 parents, c65 would need 65.
  Dir dir;
  B root;
  auto& d = root.sec(kStreamDefs);
  frame_native(d, 0x1234), stack(d, 0, 1);
  root.chunk();
  dir.put("c0", root.bytes());
  for (int i = 1; i <= 65; ++i) {
    B b;
    b.flags(kFlagForkedChild | kFlagAggregate);
    auto& di = b.sec(kStreamDefs);
    info(di, "parent_capture", "c" + std::to_string(i - 1)), info(di, "parent_defs", "1 1 0");
    b.chunk();
    dir.put("c" + std::to_string(i), b.bytes());
  }
  Reader r(dir.path + "/c64");
  Rec rec;
  r.read_all(rec);
  ASSERT_EQ(rec.frames().size(), 2u) << "passed on once, through every level";
  EXPECT_EQ(rec.frames()[1].code_or_ip, 0x1234u);
  EXPECT_EQ(rec.nodes().size(), 2u);
  std::string e = read_error(dir.path + "/c65");
  EXPECT_NE(e.find("more than 64 parent captures deep"), std::string::npos) << e;
  // Named at the link where the bound is found: the deepest one when the chain is read first,
  // the top one when c64's parents are already known (a tree's report reads each parent once).
  EXPECT_NE(e.find(" continues its parent capture " + dir.path + "/c"), std::string::npos) << e;
}

// A capture left under the parent's name by another run (another process) is not the parent.
TEST(ForkedChild, AParentOfAnotherProcessIsAnError) {
  Dir dir;
  B other = parent(false);
  other.pid(7);
  dir.put("parent.lsc", other.bytes());
  std::string path = dir.put("child.lsc", child("parent.lsc").bytes());
  std::string e = read_error(path);
  EXPECT_NE(e.find("it is process 7's capture, not process 4242's"), std::string::npos) << e;
}

TEST(ForkedChild, AMissingOrUnreadableParentIsOneErrorNamingIt) {
  Dir dir;
  std::string path = dir.put("child.lsc", child("gone.lsc").bytes());
  std::string e = read_error(path);
  EXPECT_NE(e.find("capture " + path + " continues its parent capture " + dir.path + "/gone.lsc (forked from it), "
                   "which cannot be read: "),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("No such file"), std::string::npos) << e;

  // Not a capture.
  dir.put("gone.lsc", Bytes(100, 'x'));
  EXPECT_NE(read_error(path).find("gone.lsc is not a leakscope capture"), std::string::npos);
  // Corrupt after its header.
  Bytes corrupt = parent(false).bytes();
  corrupt[kHeaderSize] ^= 0xff;
  dir.put("gone.lsc", corrupt);
  EXPECT_NE(read_error(path).find("bad chunk magic"), std::string::npos) << read_error(path);
  // A directory, a FIFO (opening it must not wait for a writer) and a symbolic link.
  std::filesystem::remove(dir.path + "/gone.lsc");
  std::filesystem::create_directory(dir.path + "/gone.lsc");
  EXPECT_NE(read_error(path).find("not a regular file"), std::string::npos) << read_error(path);
  std::filesystem::remove(dir.path + "/gone.lsc");
  ASSERT_EQ(mkfifo((dir.path + "/gone.lsc").c_str(), 0600), 0);
  EXPECT_NE(read_error(path).find("not a regular file"), std::string::npos) << read_error(path);
  std::filesystem::remove(dir.path + "/gone.lsc");
  dir.put("real.lsc", parent(false).bytes());
  std::filesystem::create_symlink("real.lsc", dir.path + "/gone.lsc");
  EXPECT_NE(read_error(path).find("symbolic link"), std::string::npos) << read_error(path);
}

TEST(ForkedChild, AParentWithFewerDefinitionsThanTheCountsIsAnError) {
  Dir dir;
  dir.put("parent.lsc", parent(false).bytes());
  std::string e = read_error(dir.put("child.lsc", child("parent.lsc", "2 3 2").bytes()));
  EXPECT_NE(e.find("parent.lsc (forked from it), which cannot be read: it has 2 frames, 2 stacks and 2 code "
                   "objects, fewer than the 2, 3 and 2 made before the fork"),
            std::string::npos)
      << e;
}

TEST(ForkedChild, AParentCutShortIsFineWhenItHoldsTheCountedDefinitions) {
  Dir dir;
  Bytes cut = parent(true).bytes();
  cut.resize(cut.size() - 5);  // killed while writing its second chunk
  dir.put("parent.lsc", cut);
  Reader r(dir.put("child.lsc", child("parent.lsc").bytes()));
  Rec rec;
  r.read_all(rec);
  EXPECT_EQ(rec.nodes().size(), 4u);
  EXPECT_FALSE(r.truncated()) << "the child's own capture is whole";
  // ... but not when the definitions the child counts were in the part that was cut.
  EXPECT_NE(read_error(dir.put("child2.lsc", child("parent.lsc", "3 3 3").bytes())).find("fewer than"),
            std::string::npos);
}

TEST(ForkedChild, AParentsEarlyStackNamingALaterFrameIsAnError) {
  Dir dir;
  B p;
  auto& d = p.sec(kStreamDefs);
  frame_native(d, 1), frame_native(d, 2), stack(d, 0, 2);  // stack 1 names frame 2
  p.chunk();
  dir.put("parent.lsc", p.bytes());
  std::string e = read_error(dir.put("child.lsc", child("parent.lsc", "1 1 0").bytes()));
  EXPECT_NE(e.find("its stack 1 names frame 2, made after the fork"), std::string::npos) << e;
}

TEST(ForkedChild, ParentCaptureMustBeAPlainFileNameInTheSameDirectory) {
  Dir dir;
  dir.put("parent.lsc", parent(false).bytes());
  std::filesystem::create_directory(dir.path + "/sub");
  dir.put("sub/parent.lsc", parent(false).bytes());
  for (std::string bad : {std::string("sub/parent.lsc"), std::string("../parent.lsc"), std::string("/etc/passwd"),
                          std::string("."), std::string(".."), std::string("parent.lsc\n"),
                          std::string("parent.lsc\0x", 12), std::string(256, 'a')}) {
    std::string e = read_error(dir.put("child.lsc", child(bad).bytes()));
    EXPECT_NE(e.find("parent_capture is not a plain file name"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_NE(read_error(dir.put("child.lsc", child("").bytes())).find("without a parent_capture"), std::string::npos);
  EXPECT_EQ(read_error(dir.put("child.lsc", child(std::string(255, 'a')).bytes())).find("plain file name"),
            std::string::npos);
}

TEST(ForkedChild, ParentDefsMustComeFirstOnceAndBeThreeCounts) {
  Dir dir;
  dir.put("parent.lsc", parent(false).bytes());
  {  // after a definition of the child's own
    B b;
    b.flags(kFlagForkedChild);
    auto& d = b.sec(kStreamDefs);
    info(d, "parent_capture", "parent.lsc"), frame_native(d, 7), info(d, "parent_defs", "2 2 2");
    b.chunk();
    std::string e = read_error(dir.put("child.lsc", b.bytes()));
    EXPECT_NE(e.find("parent_defs after definitions"), std::string::npos) << e;
  }
  {  // before its parent_capture
    B b;
    b.flags(kFlagForkedChild);
    auto& d = b.sec(kStreamDefs);
    info(d, "parent_defs", "2 2 2"), info(d, "parent_capture", "parent.lsc");
    b.chunk();
    std::string e = read_error(dir.put("child.lsc", b.bytes()));
    EXPECT_NE(e.find("without a parent_capture"), std::string::npos) << e;
  }
  {  // twice (counts 0 leave the next ids at 1: the second must still be refused)
    B b;
    b.flags(kFlagForkedChild);
    auto& d = b.sec(kStreamDefs);
    info(d, "parent_capture", "parent.lsc"), info(d, "parent_defs", "0 0 0"), info(d, "parent_defs", "0 0 0");
    b.chunk();
    std::string e = read_error(dir.put("child.lsc", b.bytes()));
    EXPECT_NE(e.find("a second parent_defs"), std::string::npos) << e;
  }
  for (const char* junk : {"", "2 2", "2 2 2 2", "2  2 2", " 2 2 2", "2 2 2 ", "2 -1 2", "2 +2 2", "0x2 2 2",
                           "2 2 4294967297", "2 2 99999999999999999999999"}) {
    std::string e = read_error(dir.put("child.lsc", child("parent.lsc", junk).bytes()));
    EXPECT_NE(e.find("parent_defs is not three decimal counts"), std::string::npos) << junk << ": " << e;
  }
  // 2^32 is allowed by the format (then the parent is too short here).
  EXPECT_NE(read_error(dir.put("child.lsc", child("parent.lsc", "2 2 4294967296").bytes())).find("fewer than"),
            std::string::npos);
}

TEST(ForkedChild, ALoopIsAnErrorNotAHang) {
  Dir dir;
  std::string self = dir.put("self.lsc", child("self.lsc").bytes());
  std::string e = read_error(self);
  EXPECT_NE(e.find("(a loop)"), std::string::npos) << e;
  dir.put("a.lsc", child("b.lsc").bytes());
  std::string b = dir.put("b.lsc", child("a.lsc").bytes());
  e = read_error(b);
  EXPECT_NE(e.find("(a loop)"), std::string::npos) << e;
  // A hard link is the same file under another name.
  ASSERT_EQ(link(self.c_str(), (dir.path + "/other.lsc").c_str()), 0);
  dir.put("self.lsc", child("other.lsc").bytes());  // rewrites the shared inode
  EXPECT_NE(read_error(self).find("(a loop)"), std::string::npos);
}

TEST(ForkedChild, SkipParentContinuesTheIdsWithoutOpeningIt) {
  Dir dir;
  // No parent.lsc at all: skipping never opens it, and the child's ids still continue after
  // the counts, so its stack 3 under the parent's stack 2 is valid.
  Reader r(dir.put("child.lsc", child("parent.lsc").bytes()));
  r.set_skip_parent(true);
  Rec rec;
  r.read_all(rec);
  EXPECT_EQ(rec.frames().size(), 2u) << "only the child's own frame";
  EXPECT_EQ(rec.nodes().size(), 2u);
  EXPECT_EQ(rec.codes().count(3), 1u);
  EXPECT_EQ(rec.alloc_stacks, (std::vector<uint64_t>{2, 3}));
  // The rules on the records still hold.
  EXPECT_NE(read_error(dir.put("bad.lsc", child("a/b").bytes()), true).find("plain file name"), std::string::npos);
}

TEST(ForkedChild, WithoutTheFlagTheRecordsAreOrdinaryInfo) {
  Dir dir;
  // Bit 1 is the aggregate flag, not the forked-child one: such a file is an ordinary capture
  // whose ids start at 1 (so the child's CODE 3 is out of sequence).
  std::string e = read_error(dir.put("child.lsc", child("gone.lsc", "2 2 2", kFlagAggregate).bytes()));
  EXPECT_NE(e.find("code object id out of sequence"), std::string::npos) << e;
  EXPECT_EQ(e.find("gone.lsc"), std::string::npos) << "the parent is never looked for";
}

TEST(ForkedChild, TheCleanStopCheckNeverOpensTheParent) {
  Dir dir;
  std::string path = dir.put("child.lsc", child("gone.lsc").bytes());
  Reader r(path);
  EXPECT_TRUE(r.ends_with_clean_stop());
}

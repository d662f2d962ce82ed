// The STATS record's numbers (capture/format.md): what the process uses now, from
// /proc/self/status, glibc's mallinfo2 and the interpreter's arena allocator (writer thread).
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "agent/agent.h"
#include "agent/writer_internal.h"

namespace leakscope::agent::wr {

size_t put_process_stats(uint8_t* p) {
  uint8_t* s = p;
  uint64_t rss = 0, anon = 0, file = 0, threads = 0;
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
      buf[n] = 0;
      auto field = [&](const char* key) -> uint64_t {
        const char* at = strstr(buf, key);
        return at ? strtoull(at + strlen(key), nullptr, 10) : 0;
      };
      rss = field("VmRSS:") * 1024;
      anon = field("RssAnon:") * 1024;
      file = (field("RssFile:") + field("RssShmem:")) * 1024;
      threads = field("Threads:");
    }
  }
  struct mallinfo2 mi = mallinfo2();
  int64_t arenas = g_arena_bytes.load(std::memory_order_relaxed);  // may dip below 0: arenas from before install
  capture::Stats st;
  st.time_ns = now_ns() - g_start_ns;
  st.rss = rss;
  st.rss_anon = anon;
  st.rss_file = file;
  st.glibc_in_use = mi.uordblks + mi.hblkhd;
  st.glibc_free = mi.fordblks;
  st.glibc_mmap = mi.hblkhd;
  st.arena_bytes = arenas > 0 ? static_cast<uint64_t>(arenas) : 0;
  st.threads = threads - 1;  // not counting the writer thread
  p = capture::put_stats(p, st);
  return static_cast<size_t>(p - s);
}

}  // namespace leakscope::agent::wr

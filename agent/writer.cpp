// Rings and the writer thread: drains the D, P and N rings into one chunk, compresses it with
// zstd and writes it with one write(2), at least once a second (crash safety) and whenever a
// ring is a quarter full. On a write error it says why once, stops tracking and keeps
// draining so the program never blocks on a full ring.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agent/agent.h"
#include "agent/aggregate.h"
#include "agent/asyncio_tasks.h"
#include "agent/compact.h"
#include "agent/gc_view.h"
#include "agent/own_memory.h"
#include "agent/writer_internal.h"

namespace leakscope::agent {

Ring g_ring_py, g_ring_native, g_ring_defs;
std::atomic<int64_t> g_arena_bytes{0};

namespace wr {
std::atomic<bool> g_writer_alive{false};
std::atomic<bool> g_write_failed{false};
std::atomic<bool> g_stopped{false};
const uint8_t* g_extra_rec = nullptr;
size_t g_extra_n = 0;
}  // namespace wr
using namespace wr;

namespace {
constexpr uint64_t kRingEventBytes = 8u << 20;
constexpr uint64_t kRingDefsBytes = 4u << 20;
constexpr uint64_t kFlushEveryNs = 1000000000ull;

int g_fd = -1;
dev_t g_fd_dev = 0;
ino_t g_fd_ino = 0;
pthread_t g_thread;
std::atomic<bool> g_stop_requested{false};
std::atomic<uint64_t> g_flush_requested{0};
std::atomic<uint64_t> g_flush_done{0};

std::atomic<bool> g_park_requested{false};
std::atomic<uint64_t> g_unpark_after_ns{UINT64_MAX};
char g_stop_reason[64];
uint32_t g_sequence = 0;
uint64_t g_file_bytes = capture::kHeaderSize;  // what the capture holds (aggregate thinning)
uint64_t g_thin_at = 0;                         // thin when g_file_bytes reaches this
uint32_t g_thinned = 0;                         // rewrites so far
char g_writer_note[256];                        // a MESSAGE for the next chunk (writer thread)
uint8_t* g_raw = nullptr;  // chunk assembly buffer
uint8_t* g_comp = nullptr;  // header + compressed bytes
size_t g_raw_cap = 0, g_comp_cap = 0;
ZSTD_CCtx* g_cctx = nullptr;

void* map_bytes(size_t n) { return own_map(n); }

bool ring_init(Ring& r, uint64_t bytes) {
  if (!r.data) r.data = static_cast<uint8_t*>(map_bytes(bytes));  // kept across detach/attach
  r.mask = bytes - 1;
  r.head.store(0);
  r.tail.store(0);
  r.last_addr = r.last_stack = r.tail_cached = 0;
  return r.data != nullptr;
}

// Consumer side (writer thread): bytes the producer published that the writer has not taken.
uint64_t ring_unread(const Ring& r) {
  return r.head.load(std::memory_order_acquire) - r.tail.load(std::memory_order_relaxed);
}

// Consumer side: copies the first n unread bytes (n <= ring_unread) to `out`, undoing the
// wrap-around, and hands that space back to the producer.
void ring_take(Ring& r, uint8_t* out, uint64_t n) {
  uint64_t tail = r.tail.load(std::memory_order_relaxed);
  uint64_t cap = r.mask + 1, off = tail & r.mask;
  uint64_t first = n < cap - off ? n : cap - off;
  std::memcpy(out, r.data + off, first);
  std::memcpy(out + first, r.data, n - first);
  r.tail.store(tail + n, std::memory_order_release);
}

// Copies the ring's unread bytes into the chunk as one section (events mode). With
// --findleaks the live table is kept too, from the same bytes.
size_t drain(Ring& r, uint8_t stream, uint8_t* out, size_t room) {
  uint64_t n = ring_unread(r);
  if (n == 0 || room < capture::kMaxVarint + 1) return 0;
  // The chunk buffer holds every ring in full, so a section never has to cut a record.
  if (n > room - capture::kMaxVarint - 1) return 0;
  uint8_t* p = out;
  *p++ = stream;
  p = capture::put_varint(p, n);
  ring_take(r, p, n);
  if (keeps_live_table()) aggregate_consume(stream, p, n);
  return static_cast<size_t>(p + n - out);
}

void write_failed_say(const char* why) {
  char msg[256];
  snprintf(msg, sizeof msg, "leakscope: cannot write the capture (%s); tracking stopped, the program runs on\n", why);
  ssize_t ignored = write(2, msg, strlen(msg));
  (void)ignored;
  g_write_failed.store(true);
  g_enabled.store(false);
}

void write_all(const uint8_t* p, size_t n) {
  // A program that closes every descriptor and opens a file may be handed our number: never
  // write into a file that is not the capture.
  struct stat st;
  if (!g_write_failed.load(std::memory_order_relaxed) &&
      (fstat(g_fd, &st) != 0 || st.st_dev != g_fd_dev || st.st_ino != g_fd_ino)) {
    write_failed_say("the program closed or replaced its file descriptor");
    return;
  }
  while (n > 0 && !g_write_failed.load(std::memory_order_relaxed)) {
    ssize_t w = write(g_fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      write_failed_say(strerror(errno));
      return;
    }
    p += w;
    n -= static_cast<size_t>(w);
    g_file_bytes += static_cast<uint64_t>(w);
  }
}

uint8_t* g_scratch = nullptr;  // aggregate mode: one ring's backlog, made contiguous
pthread_mutex_t g_consume_mutex = PTHREAD_MUTEX_INITIALIZER;

// Grows the chunk buffers so `need` more bytes fit after `used` (writer thread only).
bool ensure_room(size_t used, size_t need) {
  if (used + need + 64 <= g_raw_cap) return true;
  size_t cap = (used + need + 64) * 2;
  uint8_t* raw = static_cast<uint8_t*>(map_bytes(cap));
  size_t comp_cap = capture::kChunkHeaderSize + ZSTD_compressBound(cap);
  uint8_t* comp = static_cast<uint8_t*>(map_bytes(comp_cap));
  if (!raw || !comp) return false;
  std::memcpy(raw, g_raw, used);
  own_unmap(g_raw, g_raw_cap);
  own_unmap(g_comp, g_comp_cap);
  g_raw = raw;
  g_raw_cap = cap;
  g_comp = comp;
  g_comp_cap = comp_cap;
  return true;
}

void consume_ring(Ring& r, uint8_t stream) {
  uint64_t n = ring_unread(r);
  if (n == 0) return;
  // Taking events and applying them is one step for a fork (writer_consume_lock): a child
  // forked between the two would lose the taken events and decode the rest from the wrong
  // delta state, charging them to the wrong stacks (seen with gunicorn's workers).
  pthread_mutex_lock(&g_consume_mutex);
  ring_take(r, g_scratch, n);
  aggregate_consume(stream, g_scratch, n);
  pthread_mutex_unlock(&g_consume_mutex);
}

void consume_rings() {
  consume_ring(g_ring_py, capture::kStreamPy);
  consume_ring(g_ring_native, capture::kStreamNative);
}

// The first `pos` bytes of g_raw, compressed, as the next chunk (one write).
void write_chunk(size_t pos) {
  if (g_write_failed.load(std::memory_order_relaxed)) return;
  size_t c = ZSTD_compress2(g_cctx, g_comp + capture::kChunkHeaderSize, g_comp_cap - capture::kChunkHeaderSize,
                            g_raw, pos);
  if (ZSTD_isError(c)) return;
  capture::ChunkHeader ch{capture::kChunkMagic, static_cast<uint32_t>(c), static_cast<uint32_t>(pos), g_sequence++};
  std::memcpy(g_comp, &ch, sizeof ch);
  write_all(g_comp, capture::kChunkHeaderSize + c);
}

// One flush round -> one chunk: [D section: TICK, STATS, SNAPSHOT, STOP, the D ring] and,
// in events mode, [P section] [N section]. The D section's length is written last, as a
// 5-byte (padded) varint, so a large snapshot can be written in place.
void flush_round(bool with_stats, bool snapshot, const char* stop_reason) {
  if (g_aggregate) consume_rings();
  const uint64_t t = now_ns() - g_start_ns;
  const uint64_t dn = ring_unread(g_ring_defs);  // taken below: exactly what `need` counts
  // Aggregate: a flush because a ring filled only consumes; chunks carry snapshots, new
  // definitions and the stop, so the file grows with time and stacks, not with events.
  if (g_aggregate && !snapshot && !stop_reason && !with_stats && dn == 0) return;
  size_t need = 1024 + dn + g_extra_n + tasks_record_bound() +
                (g_aggregate && (snapshot || stop_reason) ? aggregate_snapshot_bound() : 0);
  if (!ensure_room(0, need)) return;
  uint8_t* d = g_raw;
  d[0] = capture::kStreamDefs;
  uint8_t* body = d + 1 + capture::kPaddedLength;
  uint8_t* p = body;
  *p++ = capture::kTick;
  p = capture::put_varint(p, t);
  if (with_stats) {
    p = put_gcstats(p + put_process_stats(p), t);  // GCSTATS: agent/gc_view.cpp
    tasks_sampler_request();  // asyncio's pending tasks, counted with the GIL by our sampler
  }
  p += tasks_take_record(p, tasks_record_bound());  // the last census, if one is ready
  if (g_aggregate && (snapshot || stop_reason)) {
    pthread_mutex_lock(&g_consume_mutex);  // a followed fork consumes the rings in prepare
    p = aggregate_put_snapshot(p, t, stop_reason != nullptr);
    pthread_mutex_unlock(&g_consume_mutex);
  }
  if (g_writer_note[0]) {
    *p++ = capture::kMessage;
    p = capture::put_bytes(p, g_writer_note, strlen(g_writer_note));
    g_writer_note[0] = 0;
  }
  if (g_extra_n) {
    std::memcpy(p, g_extra_rec, g_extra_n);
    p += g_extra_n;
    g_extra_rec = nullptr;
    g_extra_n = 0;
  }
  if (stop_reason) {
    *p++ = capture::kStop;
    p = capture::put_varint(p, t);
    p = capture::put_bytes(p, stop_reason, strlen(stop_reason));
  }
  ring_take(g_ring_defs, p, dn);
  p += dn;
  uint64_t len = static_cast<uint64_t>(p - body);
  capture::put_varint_padded5(d + 1, len);
  size_t pos = static_cast<size_t>(p - g_raw);
  if (!g_aggregate) {
    pos += drain(g_ring_py, capture::kStreamPy, g_raw + pos, g_raw_cap - pos);
    pos += drain(g_ring_native, capture::kStreamNative, g_raw + pos, g_raw_cap - pos);
  }
  write_chunk(pos);
}

void adopt_fd(int fd) {
  // Keep the capture's descriptor out of the low numbers programs reuse.
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
  if (high >= 0) {
    close(fd);
    fd = high;
  }
  g_fd = fd;
  struct stat st;
  if (fstat(fd, &st) == 0) {
    g_fd_dev = st.st_dev;
    g_fd_ino = st.st_ino;
  }
}

// Aggregate captures: once --thin-at bytes (or half the file, if more) have been appended
// since the last rewrite, thin the older snapshots (compact.h). Each rewrite reads at most
// three times what was appended since the one before, so the cost stays linear. A failure is said once in the capture and thinning stops.
void maybe_thin() {
  if (!g_aggregate || g_file_bytes < g_thin_at || g_write_failed.load(std::memory_order_relaxed)) return;
  CompactResult r = compact_capture(g_output_path, g_fd, now_ns() - g_start_ns, g_interval_ns, g_full_res_ns,
                                    g_thinned + 1, consume_rings);
  if (!r.ok) {
    snprintf(g_writer_note, sizeof g_writer_note, "leakscope: older snapshots not thinned (%s)", r.why);
    g_thin_at = UINT64_MAX;
    return;
  }
  ++g_thinned;
  close(g_fd);
  adopt_fd(r.fd);
  g_sequence = r.chunks;
  g_file_bytes = r.size;
  g_thin_at = r.size + (r.size / 2 > g_compact_min_bytes ? r.size / 2 : g_compact_min_bytes);
}

// Detach (writer thread): everything the attach set up is undone, the capture is closed with
// a STOP record, and the memory the agent used is handed back. The thread then ends.
// Also undoes a writer_start that failed half way (whatever was not set up is skipped).
void writer_release() {
  if (g_fd >= 0) close(g_fd);
  g_fd = -1;
  control_close();
  ZSTD_freeCCtx(g_cctx);  // accepts nullptr
  g_cctx = nullptr;
  if (g_raw) own_unmap(g_raw, g_raw_cap);
  if (g_comp) own_unmap(g_comp, g_comp_cap);
  if (g_scratch) own_unmap(g_scratch, kRingEventBytes);
  g_raw = g_comp = g_scratch = nullptr;
  g_raw_cap = g_comp_cap = 0;
  for (Ring* r : {&g_ring_py, &g_ring_native, &g_ring_defs}) {
    if (r->data) madvise(r->data, r->mask + 1, MADV_DONTNEED);
    r->head.store(0);
    r->tail.store(0);
    r->last_addr = r->last_stack = r->tail_cached = 0;
  }
}

}  // namespace

namespace wr {
void flush(bool with_stats, bool snapshot, const char* stop_reason) { flush_round(with_stats, snapshot, stop_reason); }
void release() { writer_release(); }
void nap() { writer_nap(false); }
}  // namespace wr

namespace {

void* writer_main(void*) {
  t_in_hook = true;  // nothing this thread allocates is the program's
  uint64_t last_flush = now_ns(), last_stats = 0;
  uint64_t next_snapshot = now_ns() + (g_interval_ns < kFlushEveryNs ? g_interval_ns : kFlushEveryNs);
  for (;;) {
    writer_nap(requests_servable());
    python_maybe_schedule();
    uint64_t now = now_ns();
    const Served served = serve_requests(now, &last_flush, &last_stats);
    if (served == Served::kEnd) return nullptr;
    if (served == Served::kOne) continue;
    bool stop = g_stop_requested.load(std::memory_order_acquire);
    uint64_t want = g_flush_requested.load(std::memory_order_acquire);
    const uint64_t every = g_interval_ns < kFlushEveryNs ? g_interval_ns : kFlushEveryNs;
    bool due = now - last_flush >= every || want != g_flush_done.load(std::memory_order_relaxed) ||
               ring_unread(g_ring_py) > (g_ring_py.mask + 1) / 4 ||
               ring_unread(g_ring_native) > (g_ring_native.mask + 1) / 4 ||
               ring_unread(g_ring_defs) > (g_ring_defs.mask + 1) / 4;
    if (stop) {
      control_on_stop();
      flush_round(true, true, g_stop_reason);
      g_flush_done.store(want, std::memory_order_release);
      break;
    }
    if (g_park_requested.load(std::memory_order_acquire)) {
      flush_round(false, false, nullptr);
      g_flush_done.store(want, std::memory_order_release);
      break;
    }
    if (due) {
      // Aggregate captures write the sites that changed with every flush (crash safety: at
      // most about a second old); the reader spaces its time series by --interval.
      bool snapshot = g_aggregate && now >= next_snapshot;
      if (snapshot) next_snapshot = now + every;
      // Aggregate captures take stats with each snapshot (that bounds their size).
      bool stats = g_aggregate ? snapshot : now - last_stats >= every;
      if (stats) last_stats = now;
      flush_round(stats, snapshot, nullptr);
      last_flush = now;
      g_flush_done.store(want, std::memory_order_release);
      maybe_thin();
    }
  }
  g_writer_alive.store(false, std::memory_order_release);
  return nullptr;
}

}  // namespace

namespace {
bool start_thread();
}  // namespace

void ring_append(Ring& r, const uint8_t* rec, size_t n) {
  uint64_t head = r.head.load(std::memory_order_relaxed);
  uint64_t cap = r.mask + 1;
  while (head + n - r.tail.load(std::memory_order_acquire) > cap) {
    if (!g_enabled.load(std::memory_order_relaxed)) return;  // stopping or detaching: drop
    if (!g_writer_alive.load(std::memory_order_acquire)) {
      if (g_writer_parked.exchange(false)) {  // parked around a fork: the ring is full, restart now
        start_thread();
        continue;
      }
      return;  // nobody will drain: drop
    }
    sched_yield();
  }
  uint64_t off = head & r.mask;
  if (LSP_LIKELY(n <= cap - off)) {
    std::memcpy(r.data + off, rec, n);
  } else {
    size_t first = static_cast<size_t>(cap - off);
    std::memcpy(r.data + off, rec, first);
    std::memcpy(r.data, rec + first, n - first);
  }
  r.head.store(head + n, std::memory_order_release);
}

namespace {
bool start_thread() {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  g_writer_alive.store(true);
  int rc;
  {
    bool was = t_in_hook;
    t_in_hook = true;
    rc = pthread_create(&g_thread, nullptr, writer_main, nullptr);
    t_in_hook = was;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) {
    g_writer_alive.store(false);
    return false;
  }
  return true;
}
}  // namespace

std::atomic<bool> g_writer_parked{false};

namespace {
// Field 20 of /proc/self/stat: the kernel's thread count (what CPython's fork check reads).
long kernel_thread_count() {
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* p = strrchr(buf, ')');  // the command name may hold spaces
  if (!p) return -1;
  int field = 2;
  for (; *p && field < 20; ++p)
    if (*p == ' ') ++field;
  return strtol(p, nullptr, 10);
}
}  // namespace

void writer_park() {
  if (g_stopped.load() || !g_writer_alive.load(std::memory_order_acquire)) return;
  long before = kernel_thread_count();
  g_park_requested.store(true, std::memory_order_release);
  wake_writer();
  for (int i = 0; i < 50000 && g_writer_alive.load(std::memory_order_acquire); ++i) sleep_ns(100 * 1000);
  if (g_writer_alive.load(std::memory_order_acquire)) {  // did not park in 5 s: leave it running
    g_park_requested.store(false);
    return;
  }
  pthread_join(g_thread, nullptr);
  // pthread_join returns once the kernel clears the thread id, a little before the thread
  // leaves the thread group; wait (at most ~20 ms) until the count drops.
  for (int i = 0; i < 200 && before > 0 && kernel_thread_count() >= before; ++i) sleep_ns(100 * 1000);
  g_park_requested.store(false);
  g_unpark_after_ns.store(UINT64_MAX);
  g_writer_parked.store(true, std::memory_order_release);
}

namespace {
// CPython counts the process's threads in the parent right after fork() returns, still inside
// os.fork(): until the forking frame moves on, the writer must not come back. A fork from C
// code has no such check, but its frame moves on too; the 20 ms are for a frame that never does.
PyFramePosition g_forking_frame;
std::atomic<bool> g_have_forking_frame{false};
}  // namespace

void writer_unpark_later(const PyFramePosition* forking_frame) {
  if (!g_writer_parked.load(std::memory_order_acquire)) return;
  g_have_forking_frame.store(false);
  if (forking_frame) {
    g_forking_frame = *forking_frame;
    g_have_forking_frame.store(true, std::memory_order_release);
  }
  g_unpark_after_ns.store(now_ns() + 20 * 1000 * 1000);
}

void writer_maybe_unpark() {
  if (!g_writer_parked.load(std::memory_order_acquire)) return;
  bool moved = false;
  if (g_have_forking_frame.load(std::memory_order_acquire)) {
    PyFramePosition now;
    moved = python_gil_frame(&now) && !(now == g_forking_frame);
  }
  if (!moved && now_ns() < g_unpark_after_ns.load()) return;
  if (g_writer_parked.exchange(false)) start_thread();
}

namespace {
bool writer_start_inner();
}

// Owns `fd` from here on: on failure everything it set up is undone (the caller must not
// close `fd`: it may have been renumbered already).
bool writer_start(int fd) {
  control_open();
  adopt_fd(fd);
  if (writer_start_inner()) return true;
  writer_release();
  return false;
}

namespace {
// A new capture (after a detach, or a followed fork child's): nothing of the previous one
// carries over.
void reset_capture_state() {
  g_stopped.store(false);
  g_stop_requested.store(false);
  g_write_failed.store(false);
  g_park_requested.store(false);
  g_flush_requested.store(0);
  g_flush_done.store(0);
  g_sequence = 0;
  g_file_bytes = capture::kHeaderSize;
  g_thinned = 0;
  g_writer_note[0] = 0;
  g_thin_at = g_compact_min_bytes;
  g_extra_rec = nullptr;  // a walk record of a previous capture's (a parent's, half handed over)
  g_extra_n = 0;
}

bool writer_start_inner() {
  reset_capture_state();
  g_writer_parked.store(false);
  open_wake_fd();
  native_lock_init();
  if (!ring_init(g_ring_py, kRingEventBytes) || !ring_init(g_ring_native, kRingEventBytes) ||
      !ring_init(g_ring_defs, kRingDefsBytes))
    return false;
  g_raw_cap = 2 * kRingEventBytes + kRingDefsBytes + 4096;
  g_comp_cap = capture::kChunkHeaderSize + ZSTD_compressBound(g_raw_cap);
  g_raw = static_cast<uint8_t*>(map_bytes(g_raw_cap));
  g_comp = static_cast<uint8_t*>(map_bytes(g_comp_cap));
  g_scratch = static_cast<uint8_t*>(map_bytes(kRingEventBytes));
  if (!g_raw || !g_comp || !g_scratch) return false;
  {
    HookGuard guard;
    g_cctx = ZSTD_createCCtx();
    if (!g_cctx) return false;
    ZSTD_CCtx_setParameter(g_cctx, ZSTD_c_compressionLevel, g_zstd_level);
    ZSTD_CCtx_setParameter(g_cctx, ZSTD_c_checksumFlag, 1);
  }
  return start_thread();
}
}  // namespace

void writer_wake() { wake_writer(); }

void writer_consume_lock() { pthread_mutex_lock(&g_consume_mutex); }
void writer_consume_all_locked() {
  // The lock is held by the caller (a fork's prepare): no batch is half applied, no snapshot is
  // being written, so the rings can be taken here, on the forking thread.
  for (auto [r, stream] : {std::pair<Ring*, uint8_t>{&g_ring_py, capture::kStreamPy}, {&g_ring_native, capture::kStreamNative}}) {
    uint64_t n = ring_unread(*r);
    if (n == 0 || !g_scratch) continue;
    ring_take(*r, g_scratch, n);
    aggregate_consume(stream, g_scratch, n);
  }
}
void writer_consume_unlock() { pthread_mutex_unlock(&g_consume_mutex); }

void writer_flush_sync() {
  if (g_writer_parked.exchange(false)) start_thread();
  if (!g_writer_alive.load(std::memory_order_acquire)) return;
  uint64_t want = g_flush_requested.fetch_add(1) + 1;
  wake_writer();
  for (int i = 0; i < 20000 && g_flush_done.load(std::memory_order_acquire) < want; ++i) sleep_ns(100 * 1000);
}

void writer_stop(const char* reason) {
  if (g_stopped.exchange(true)) return;
  g_enabled.store(false, std::memory_order_release);
  if (g_writer_parked.exchange(false)) start_thread();  // parked after a fork: finish the capture
  if (!g_writer_alive.load(std::memory_order_acquire)) return;
  snprintf(g_stop_reason, sizeof g_stop_reason, "%s", reason);
  g_stop_requested.store(true, std::memory_order_release);
  wake_writer();
  // Wait for the final chunk (bounded at ~5 s: never hang the program's exit).
  for (int i = 0; i < 50000 && g_writer_alive.load(std::memory_order_acquire); ++i) sleep_ns(100 * 1000);
  if (!g_writer_alive.load(std::memory_order_acquire)) {
    HookGuard guard;
    pthread_join(g_thread, nullptr);
  }
}

void writer_append_after_stop(const uint8_t* rec, size_t n) {
  if (g_fd < 0 || !g_cctx || g_write_failed.load() || g_writer_alive.load(std::memory_order_acquire)) return;
  if (!ensure_room(0, n + 1 + capture::kPaddedLength)) return;
  g_raw[0] = capture::kStreamDefs;
  capture::put_varint_padded5(g_raw + 1, n);
  std::memcpy(g_raw + 1 + capture::kPaddedLength, rec, n);
  write_chunk(1 + capture::kPaddedLength + n);
}

void writer_start_in_fork_child(int fd) {
  control_close();  // the parent's socket and capture: the copies are closed, theirs stay open
  if (g_fd >= 0) close(g_fd);
  g_writer_alive.store(false);
  reset_capture_state();
  // Definitions still in the ring were made before the fork: the parent writes them, and the
  // child's capture names them through parent_defs.
  g_ring_defs.tail.store(g_ring_defs.head.load());
  g_ring_defs.tail_cached = g_ring_defs.head.load();
  adopt_fd(fd);
  control_open();
  reopen_wake_fd_in_child();
  wr::control_state_after_fork_child();
  g_have_forking_frame.store(false);
  g_writer_parked.store(false);
}

void writer_run_in_fork_child() {
  // Started now, also in a Python child (a worker that blocks at once must still get its
  // capture written): the thread touches no Python state but the collector's counters, read
  // racily anyway; the asyncio sampler, which takes the GIL, waits (tasks_after_fork_child).
  start_thread();
}

void writer_after_fork_child() {
  close_wake_fd_in_child();  // the parent's; this child records nothing
  control_close();
  // The writer thread does not exist in the child and the capture is the parent's.
  g_writer_alive.store(false);
  g_stopped.store(true);
  if (g_fd >= 0) close(g_fd);
  g_fd = -1;
}

}  // namespace leakscope::agent

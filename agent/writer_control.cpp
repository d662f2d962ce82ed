// The control requests the writer thread serves (writer_internal.h): `leakscope snapshot`,
// `detach` (and the end of `attach --duration`), `findleaks`, `status`, the at-exit scan of
// `run --findleaks`, and the live retention walks snapshot and detach start (docs/retention.md).
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>

#include "agent/agent.h"
#include "agent/aggregate.h"
#include "agent/asyncio_tasks.h"
#include "agent/writer_internal.h"

namespace leakscope::agent::wr {
namespace {

// A live retention walk runs on a thread of its own: it needs the GIL, and the writer must go
// on draining meanwhile. Its record goes into the chunk that answers; requests wait.
int g_retain_client = -2;  // -2: no walk; -1: a --duration detach; else the client to answer
bool g_retain_detach = false;

// False when a stop began first (the process is exiting): that stop finishes the capture and
// joins this thread.
bool detach_now(int client, bool release_walk = false) {
  if (g_stopped.exchange(true)) {
    if (client >= 0) control_reply_text(client, "error the process is exiting\n");
    return false;
  }
  detach_disable();
  tasks_sampler_stop();
  flush(true, true, "detach");
  bool ok = !g_write_failed.load();
  // The capture is complete: answer now, hand the memory back after (detach_finish's grace
  // is 100 ms). A new attach waits for g_detaching, so it finds nothing left over.
  if (client >= 0) control_reply(client, ok);
  control_close();  // a client connecting now is refused, not left waiting
  detach_grace();
  release();
  detach_finish();
  if (release_walk) retention_live_release();  // before a new attach can start its own
  pthread_detach(pthread_self());  // nobody joins a detached agent's writer: its stack goes back
  g_writer_alive.store(false, std::memory_order_release);  // a new attach starts a new writer
  g_detaching.store(false, std::memory_order_release);
  return true;
}

// `leakscope findleaks PID` (docs/findleaks.md): rings consumed, descriptor published, then
// this thread holds still until the client has stopped the process, copied it and resumed it.
void serve_findleaks(int client) {
  flush(false, false, nullptr);
  char why[256], msg[4400];
  uint64_t d = scan_describe(nullptr, why, sizeof why);
  if (!d) {
    snprintf(msg, sizeof msg, "error %s\n", why);
    control_reply_text(client, msg);
    return;
  }
  int n = snprintf(msg, sizeof msg, "ready 0x%llx %s\n", static_cast<unsigned long long>(d), g_output_path);
  if (write(client, msg, static_cast<size_t>(n)) == n) {
    pollfd p{client, POLLIN, 0};
    if (poll(&p, 1, 120 * 1000) == 1) {
      char buf[16];
      ssize_t r = read(client, buf, sizeof buf);
      (void)r;
    }
  }
  flush(false, false, nullptr);  // stacks interned meanwhile reach the file
  control_reply(client, !g_write_failed.load());
}

// run --findleaks at exit: the same, asked by the exiting thread (findleaks_at_exit).
void serve_scan_request() {
  flush(false, false, nullptr);
  char why[256];
  g_scan_descriptor = scan_describe(g_scan_requester, why, sizeof why);
  g_scan_state.store(g_scan_descriptor ? kScanReady : kScanFailed, std::memory_order_release);
  for (;;) {
    int st = g_scan_state.load(std::memory_order_acquire);
    if (st != kScanReady && st != kScanFailed) break;
    nap();
  }
}

// A live walk is over: its record into a chunk, then the answer (or the detach it preceded).
Served finish_retention(const uint8_t* rec, size_t n, uint64_t* last_flush, uint64_t* last_stats) {
  g_extra_rec = rec;
  g_extra_n = rec ? n : 0;
  const int client = g_retain_client;
  g_retain_client = -2;
  if (g_retain_detach) {
    g_retain_detach = false;
    const bool gone = detach_now(client, true);
    if (!gone) retention_live_release();
    return gone ? Served::kEnd : Served::kOne;
  }
  flush(true, true, nullptr);
  retention_live_release();
  *last_flush = *last_stats = now_ns();
  control_reply(client, !g_write_failed.load());
  return Served::kOne;
}

// `mark`: the rings consumed (their events reach the file in a chunk, as at any flush, but no
// snapshot is written), then the totals the aggregate keeps.
void serve_mark(int client) {
  if (!g_aggregate) {
    control_reply_text(client, "error mark needs the aggregate mode (not --mode events)\n");
    return;
  }
  flush(false, false, nullptr);
  uint64_t live, peak;
  aggregate_mark(&live, &peak);
  char msg[64];
  snprintf(msg, sizeof msg, "ok %llu %llu\n", static_cast<unsigned long long>(live), static_cast<unsigned long long>(peak));
  control_reply_text(client, msg);
}

Served serve_client(int client, ControlRequest req, uint64_t* last_flush, uint64_t* last_stats) {
  switch (req) {
    case ControlRequest::kStatus: {
      char msg[4200];
      snprintf(msg, sizeof msg, "%s %s\n", g_attached ? "attached" : "run", g_output_path);
      control_reply_text(client, msg);
      return Served::kOne;
    }
    case ControlRequest::kFindleaks:
      serve_findleaks(client);
      *last_flush = now_ns();
      return Served::kOne;
    case ControlRequest::kDetach:
      if (!g_attached) {
        control_reply_text(client, "error it was started by `leakscope run` and is tracked until it exits\n");
        return Served::kOne;
      }
      if (retention_start_live()) {
        g_retain_client = client;
        g_retain_detach = true;
        return Served::kOne;
      }
      return detach_now(client) ? Served::kEnd : Served::kOne;
    case ControlRequest::kSnapshot:
      // A snapshot now, answered once it is written (for Python, once the walk it starts is over).
      if (retention_start_live()) {
        g_retain_client = client;
        return Served::kOne;
      }
      [[fallthrough]];
    case ControlRequest::kFlush:
      flush(true, true, nullptr);
      *last_flush = *last_stats = now_ns();
      control_reply(client, !g_write_failed.load());
      return Served::kOne;
    case ControlRequest::kMark:
      serve_mark(client);
      return Served::kOne;
  }
  return Served::kOne;
}

}  // namespace

bool requests_servable() {
  return g_retain_client == -2 && g_scan_state.load(std::memory_order_relaxed) != kScanRequested;
}

void control_state_after_fork_child() {
  // The parent's client (if one was waiting) stays the parent's: its descriptor is closed here
  // without a word, and a walk the parent started is not this process's to finish.
  if (g_retain_client >= 0) close(g_retain_client);
  g_retain_client = -2;
  g_retain_detach = false;
  retention_live_forget_in_child();
}

Served serve_requests(uint64_t now, uint64_t* last_flush, uint64_t* last_stats) {
  if (g_scan_state.load(std::memory_order_acquire) == kScanRequested) {
    serve_scan_request();
    return Served::kOne;
  }
  if (g_retain_client != -2) {
    const uint8_t* rec;
    size_t n;
    return retention_live_done(&rec, &n) ? finish_retention(rec, n, last_flush, last_stats) : Served::kNone;
  }
  ControlRequest req;
  if (int client = control_poll(&req); client >= 0) return serve_client(client, req, last_flush, last_stats);
  if (g_detach_at_ns && now >= g_detach_at_ns) {  // attach --duration
    g_detach_at_ns = 0;
    if (retention_start_live()) {
      g_retain_client = -1;
      g_retain_detach = true;
      return Served::kOne;
    }
    if (detach_now(-1)) return Served::kEnd;
  }
  return Served::kNone;
}

void control_on_stop() {
  if (g_retain_client >= 0) control_reply_text(g_retain_client, "error the process is exiting\n");
  g_retain_client = -2;
}

}  // namespace leakscope::agent::wr

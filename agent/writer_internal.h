// What writer.cpp (rings, chunks, the writer thread's loop) shares with writer_control.cpp (the
// control requests it serves: snapshot, detach, findleaks, status, the at-exit scan, live
// retention walks). Writer thread only, except the atomics.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace leakscope::agent::wr {

extern std::atomic<bool> g_writer_alive, g_write_failed, g_stopped;
// A record for the next chunk's D section (a live retention walk's), taken by flush().
extern const uint8_t* g_extra_rec;
extern size_t g_extra_n;

void flush(bool with_stats, bool snapshot, const char* stop_reason);  // one chunk
size_t put_process_stats(uint8_t* p);  // a STATS record at p; its length (process_stats.cpp)
void release();  // everything the writer set up, undone (detach)
void nap();      // waits for work, at most a few ms

enum class Served { kNone, kOne, kEnd };
// Serves what is asked of the writer thread before it flushes: kOne when something was
// served (the loop starts over), kEnd when the writer thread must end (detached).
Served serve_requests(uint64_t now, uint64_t* last_flush, uint64_t* last_stats);
// False while a client cannot be accepted (a live retention walk, the exit scan): the nap then
// does not wake for connections.
bool requests_servable();
// A followed fork child: no walk, scan or client of the parent's is this process's.
void control_state_after_fork_child();
// The process is exiting: a client still waiting for a walk gets an error.
void control_on_stop();

}  // namespace leakscope::agent::wr

namespace leakscope::agent {
// The writer's nap and wake-ups (writer_wake.cpp).
void sleep_ns(long ns);
void wake_writer();                    // one write() to the eventfd: also from a signal handler
void open_wake_fd();                   // once per process (kept across detach/attach)
void close_wake_fd_in_child();         // a fork child that records nothing
void reopen_wake_fd_in_child();        // a followed fork child: its own eventfd
// Up to 5 ms; wakes at once for wake_writer and, `with_control`, for a client connecting (not
// while requests cannot be served: poll is level-triggered, a waiting client would make the
// writer spin).
void writer_nap(bool with_control);
}  // namespace leakscope::agent

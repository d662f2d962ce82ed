// findleaks, agent side (docs/findleaks.md): the scan descriptor the CLI reads out of a
// stopped process, and the at-exit request of `run --findleaks`. The scan itself never runs
// here: the agent only says where its tables are and then holds still.
#include <dlfcn.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "agent/agent.h"
#include "agent/aggregate.h"
#include "agent/own_memory.h"
#include "capture/scan_abi.h"

namespace leakscope::agent {

bool g_findleaks = false;
std::atomic<int> g_scan_state{0};
const ScanRequester* g_scan_requester = nullptr;
uint64_t g_scan_descriptor = 0;
char g_findleaks_name[128];

namespace {
uint8_t* g_desc = nullptr;
size_t g_desc_size = 0;
constexpr size_t kMaxOwnRanges = 4096;

// glibc's sizes for each thread's TLS root, from its private interface (as LeakSanitizer
// takes them): the static TLS block below the thread pointer and the thread descriptor above.
struct TlsInfo {
  size_t static_size = 0, static_align = 0, pthread_size = 0;
  size_t specific_off = 0, specific_n = 0, level2_size = 0;
};
TlsInfo tls_info() {
  TlsInfo t;
  using GetTls = void (*)(size_t*, size_t*);
  if (auto f = reinterpret_cast<GetTls>(g_real.dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info")))
    f(&t.static_size, &t.static_align);
  if (auto p = static_cast<const uint32_t*>(g_real.dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread")))
    t.pthread_size = *p;
  // libthread_db's field descriptors: {bits per element, elements, offset} (nptl_db/db_info.c).
  if (auto f = static_cast<const uint32_t*>(g_real.dlsym(RTLD_DEFAULT, "_thread_db_pthread_specific"))) {
    t.specific_off = f[2];
    t.specific_n = static_cast<size_t>(f[0]) / 8 * f[1] / sizeof(void*);
  }
  if (auto p = static_cast<const uint32_t*>(g_real.dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread_key_data_level2")))
    t.level2_size = *p;
  return t;
}

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
}  // namespace

void capture_requester(ScanRequester* r) {
  // rbx and r12-r15 still hold the caller's values here (this function touches none of them:
  // its argument is pinned to rdi); rbp's is the one the prologue pushed.
  asm volatile(
      "mov %%rbx, 0(%0)\n\t"
      "mov %%r12, 16(%0)\n\t"
      "mov %%r13, 24(%0)\n\t"
      "mov %%r14, 32(%0)\n\t"
      "mov %%r15, 40(%0)\n\t"
      :
      : "D"(r->regs)
      : "memory");
  auto* frame = static_cast<uint64_t*>(__builtin_frame_address(0));
  r->regs[1] = frame[0];
  r->sp = reinterpret_cast<uint64_t>(frame) + 16;  // the caller's stack pointer at the call
  r->tid = static_cast<uint64_t>(gettid());
}

uint64_t scan_describe(const ScanRequester* req, char* why, size_t whylen) {
  if (g_sample_rate) {
    snprintf(why, whylen, "it samples allocations (--sample-rate); reachability needs every block");
    return 0;
  }
  if (!keeps_live_table()) {
    snprintf(why, whylen,
             "it records events only (--mode events): run it with --findleaks, or in the default aggregate mode");
    return 0;
  }
  const size_t lists = aggregate_describe_bound() + kMaxOwnRanges * sizeof(capture::ScanRange);
  const size_t bound = sizeof(capture::ScanDescriptor) + lists + 64;
  if (g_desc) own_unmap(g_desc, g_desc_size);
  g_desc = static_cast<uint8_t*>(own_map(bound));
  g_desc_size = bound;
  if (!g_desc) {
    snprintf(why, whylen, "the agent cannot map memory for the scan descriptor");
    return 0;
  }
  auto* d = new (g_desc) capture::ScanDescriptor{};
  memcpy(d->magic, capture::kScanMagic, sizeof d->magic);
  d->version = capture::kScanAbiVersion;
  bool py = g_py_state.load() == PyState::kInstalled;
  uint32_t flags = 0;
  if (g_attached) flags |= capture::kScanAttached;
  if (foreign_allocator()) flags |= capture::kScanForeignMalloc;
  if (req) flags |= capture::kScanExit;
  if (py) flags |= capture::kScanPython;
  d->flags = flags;
  d->py_minor = py ? static_cast<uint32_t>(g_py.minor) : 0;
  d->pid = static_cast<uint64_t>(getpid());
  d->writer_tid = static_cast<uint64_t>(gettid());
  if (req) {
    d->requester_tid = req->tid;
    d->requester_sp = req->sp;
    memcpy(d->requester_regs, req->regs, sizeof d->requester_regs);
  }
  TlsInfo t = tls_info();
  d->tls_static_size = t.static_size;
  d->tls_static_align = t.static_align;
  d->pthread_size = t.pthread_size;
  d->pthread_specific_off = t.specific_off;
  d->pthread_specific_n = t.specific_n;
  d->key_level2_size = t.level2_size;
  d->in_hook_tls_offset = static_cast<int64_t>(reinterpret_cast<uintptr_t>(&t_in_hook) -
                                               reinterpret_cast<uintptr_t>(__builtin_thread_pointer()));
  d->py_type_type = reinterpret_cast<uint64_t>(py ? g_real.dlsym(RTLD_DEFAULT, "PyType_Type") : nullptr);
  d->time_ns = now_ns() - g_start_ns;
  const Ring* rings[2] = {&g_ring_py, &g_ring_native};
  for (int i = 0; i < 2; ++i)
    d->ring[i] = capture::ScanRing{reinterpret_cast<uint64_t>(rings[i]->data), rings[i]->mask,
                                   reinterpret_cast<uint64_t>(&rings[i]->head), rings[i]->tail.load()};
  size_t used = aggregate_describe(d, g_desc + sizeof *d, lists - kMaxOwnRanges * sizeof(capture::ScanRange));
  d->own_off = sizeof *d + used;
  d->n_own = own_ranges(reinterpret_cast<capture::ScanRange*>(g_desc + d->own_off), kMaxOwnRanges);
  d->size = static_cast<uint32_t>(d->own_off + d->n_own * sizeof(capture::ScanRange));
  snprintf(d->agent_path, sizeof d->agent_path, "%s", g_agent_path);
  snprintf(d->capture_path, sizeof d->capture_path, "%s", g_output_path);
  return reinterpret_cast<uint64_t>(g_desc);
}

// The exiting thread asks; the writer thread (writer_serve_scan_request) publishes the
// descriptor and holds still until the `run` process has copied this one and said "done".
void findleaks_at_exit(const ScanRequester& requester) {
  const char* name = g_findleaks_name;
  if (!*name) return;
  g_scan_requester = &requester;
  g_scan_state.store(kScanRequested, std::memory_order_release);
  writer_wake();
  for (int i = 0; i < 5000 && g_scan_state.load(std::memory_order_acquire) == kScanRequested; ++i) sleep_ms(1);
  int st = g_scan_state.load(std::memory_order_acquire);
  if (st != kScanReady) {
    agent_message(st == kScanFailed ? "leakscope: findleaks at exit did not run (the agent could not describe its tables)"
                                    : "leakscope: findleaks at exit did not run (the writer thread did not answer)");
    g_scan_state.store(kScanIdle, std::memory_order_release);
    return;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "%s", name);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  bool asked = false;
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), len) == 0) {
    // Only our parent, the `run` process, may scan us.
    ucred cred{};
    socklen_t cl = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid == getppid()) {
      char msg[64];
      int k = snprintf(msg, sizeof msg, "scan 0x%llx\n", static_cast<unsigned long long>(g_scan_descriptor));
      if (write(fd, msg, static_cast<size_t>(k)) == k) {
        asked = true;
        pollfd p{fd, POLLIN, 0};
        char buf[16];
        // The parent copies our memory (seconds for gigabytes), then answers; a dead parent
        // closes the socket. Never hang the exit for ever.
        if (poll(&p, 1, 600 * 1000) == 1) {
          ssize_t r = read(fd, buf, sizeof buf);
          (void)r;
        }
      }
    }
  }
  if (fd >= 0) close(fd);
  if (!asked) agent_message("leakscope: findleaks at exit did not run (the leakscope run process did not answer)");
  g_scan_state.store(kScanIdle, std::memory_order_release);
}

}  // namespace leakscope::agent

// Pending asyncio tasks: see asyncio_tasks.h. The census reads asyncio's own task sets
// without running Python code of the program: the sets and weak references are read through
// the version's structs (python/objects.c); a task's `_state` and `_coro`, a coroutine's
// `__qualname__` and `cr_await` go through PyObject_GetAttrString, which for asyncio's tasks and
// the interpreter's coroutines are C getters.
#include "agent/spin_lock.h"
#include "agent/asyncio_tasks.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "agent/agent.h"
#include "agent/aggregate.h"
#include "agent/python_objects.h"

namespace leakscope::agent {
namespace {

constexpr size_t kMaxGroups = 64, kMaxText = 200, kMaxTasks = 1u << 20;
constexpr uint64_t kVersion = 1;

struct TaskGroup {
  uint32_t stack;  // kNoNode: unknown
  char coro[kMaxText], awaiting[kMaxText];
  uint64_t count, unreferenced;
  uint32_t first_ms;  // the oldest task's first sighting
};

// When each pending task was first seen (ms since tracking began), carried from census to
// census; only touched with the GIL held.
IndexMap g_first_seen;

uint32_t now_ms() { return static_cast<uint32_t>((now_ns() - g_start_ns) / 1000000u); }

void put_str(OwnArray<uint8_t>& out, const char* s) {
  size_t n = strnlen(s, kMaxText);
  put_varint(out, n);
  for (size_t i = 0; i < n; ++i) out.push(static_cast<uint8_t>(s[i]));
}

// A str object as UTF-8 (truncated), or "" when it is not a str.
void text_of(const PyObjectsApi* a, void* str, char* out, size_t cap) {
  lsp_pystr s;
  size_t n = 0;
  if (str && a->objs->str(str, &s)) to_utf8(s, reinterpret_cast<uint8_t*>(out), cap - 1, &n);
  out[n] = 0;
}

void qualname_of(const PyObjectsApi* a, void* obj, char* out, size_t cap) {
  out[0] = 0;
  if (void* q = py_getattr(a, obj, "__qualname__")) {
    text_of(a, q, out, cap);
    a->decref(q);
  }
}

bool is_pending(const PyObjectsApi* a, void* task) {
  void* st = py_getattr(a, task, "_state");
  if (!st) return false;
  char s[16];
  text_of(a, st, s, sizeof s);
  a->decref(st);
  return strcmp(s, "PENDING") == 0;
}

// What the task's coroutine waits on: the innermost coroutine of its await chain other than its
// own ("Event.wait", "Queue.get", "sleep"), else the type of the awaited object ("Future").
void awaiting_of(const PyObjectsApi* a, void* coro, char* out, size_t cap) {
  snprintf(out, cap, "nothing (ready to run)");
  void* cur = coro;
  bool own = true;
  for (int depth = 0; cur && depth < 32; ++depth) {
    void* next = py_getattr(a, cur, "cr_await");
    if (!next) next = py_getattr(a, cur, "gi_yieldfrom");
    if (cur != coro) a->decref(cur);
    cur = nullptr;
    if (!next) break;
    if (next == a->none) {
      a->decref(next);
      break;
    }
    void* t = a->objs->type_of(next);
    if (t == a->py.coro_type || t == a->py.gen_type) {
      qualname_of(a, next, out, cap);
      own = false;
      cur = next;  // owned reference, released next round
      continue;
    }
    if (own || !out[0]) snprintf(out, cap, "%s", a->objs->type_name(next));
    a->decref(next);
    break;
  }
  if (cur && cur != coro) a->decref(cur);
}

// Every task asyncio knows, live or done (the caller checks the state).
template <typename F>
void for_each_task(const PyObjectsApi* a, F&& f) {
  void* mod = dict_get(a->objs, &a->py, a->modules(), "asyncio.tasks");
  void* ns = mod ? namespace_dict(a->objs, &a->py, mod) : nullptr;
  if (!ns) return;
  struct Ctx {
    const PyObjectsApi* a;
    F* f;
    bool weak;
    size_t seen;
  };
  auto members = [](void* c, void* t, int kind, uintptr_t) {
    auto* x = static_cast<Ctx*>(c);
    if (kind != LSP_EDGE_MEMBER || x->seen >= kMaxTasks) return;
    void* task = x->weak ? x->a->objs->weakref_target(t) : t;
    if (!task || task == x->a->none) return;
    ++x->seen;
    (*x->f)(task);
  };
  for (const char* name : {"_all_tasks", "_scheduled_tasks"}) {  // WeakSets: their `data` set
    void* ws = dict_get(a->objs, &a->py, ns, name);
    void* data = ws ? attr_get(a->objs, &a->py, ws, "data") : nullptr;
    Ctx c{a, &f, true, 0};
    if (data) a->objs->edges(&a->py, data, 0, members, &c);
  }
  if (void* eager = dict_get(a->objs, &a->py, ns, "_eager_tasks")) {  // 3.12+: a plain set
    Ctx c{a, &f, false, 0};
    a->objs->edges(&a->py, eager, 0, members, &c);
  }
}

}  // namespace

bool tasks_census(OwnArray<uint8_t>* rec, const IndexMap* reached) {
  const PyObjectsApi* a = py_objects_api();
  if (!a || !dict_get(a->objs, &a->py, a->modules(), "asyncio.tasks")) return false;
  void *et, *ev, *etb;
  a->err_fetch(&et, &ev, &etb);  // the thread's exception, if any, is put back untouched
  OwnArray<uint64_t> pending;
  for_each_task(a, [&](void* task) {
    if (is_pending(a, task)) pending.push(reinterpret_cast<uint64_t>(task));
  });
  if (pending.n) writer_flush_sync();  // their allocations reach the live table
  static TaskGroup groups[kMaxGroups];
  size_t ngroups = 0;
  IndexMap seen_now;
  const uint32_t now = now_ms();
  for (size_t i = 0; i < pending.n; ++i) {
    void* task = reinterpret_cast<void*>(pending[i]);
    capture::LiveEntry e;
    const uint32_t stack = aggregate_lookup_py(pending[i] - a->objs->preheader(task), &e) ? e.stack : kNoNode;
    TaskGroup g{};
    g.stack = stack;
    void* coro = py_getattr(a, task, "_coro");
    if (coro) {
      qualname_of(a, coro, g.coro, sizeof g.coro);
      awaiting_of(a, coro, g.awaiting, sizeof g.awaiting);
      a->decref(coro);
    }
    uint32_t first = g_first_seen.find(pending[i]);
    if (first == kNoNode) first = now;
    seen_now.insert(pending[i], first);
    size_t k = 0;
    while (k < ngroups && !(groups[k].stack == g.stack && !strcmp(groups[k].coro, g.coro) &&
                            !strcmp(groups[k].awaiting, g.awaiting)))
      ++k;
    if (k == ngroups && ngroups == kMaxGroups) {
      k = kMaxGroups - 1;  // the rest share the last group
    } else if (k == ngroups) {
      g.first_ms = first;
      groups[ngroups++] = g;
    }
    groups[k].count += 1;
    groups[k].first_ms = std::min(groups[k].first_ms, first);
    if (reached && reached->find(pending[i]) == kNoNode) groups[k].unreferenced += 1;
  }
  g_first_seen.release();
  g_first_seen = seen_now;
  a->err_restore(et, ev, etb);
  std::sort(groups, groups + ngroups, [](const TaskGroup& x, const TaskGroup& y) { return x.count > y.count; });
  OwnArray<uint8_t> p;
  for (uint64_t v : {kVersion, now_ns() - g_start_ns, static_cast<uint64_t>(pending.n),
                     static_cast<uint64_t>(reached ? 1 : 0), static_cast<uint64_t>(ngroups)})
    put_varint(p, v);
  for (size_t k = 0; k < ngroups; ++k) {
    put_varint(p, groups[k].stack == kNoNode ? 0 : static_cast<uint64_t>(groups[k].stack) + 1);
    put_str(p, groups[k].coro);
    put_str(p, groups[k].awaiting);
    put_varint(p, groups[k].count);
    put_varint(p, now >= groups[k].first_ms ? now - groups[k].first_ms : 0);
    put_varint(p, groups[k].unreferenced);
  }
  pending.release();
  put_record(*rec, capture::kTasks, p);
  p.release();
  return !rec->failed;
}

// ---- the sampler thread

namespace {

constexpr size_t kRecBound = 16 + kMaxGroups * (3 * capture::kMaxVarint + 2 * (kMaxText + 2) + 8);
std::atomic<bool> g_sampler_started{false}, g_sampler_stop{false}, g_sampler_running{false};
std::atomic<uint64_t> g_not_before_ns{0};  // a followed fork child: no sampler before this
int g_efd = -1;
SpinLock g_rec_lock;
uint8_t g_rec[kRecBound];
size_t g_rec_n = 0;

void sample_with_gil(void*) {
  if (!g_enabled.load(std::memory_order_relaxed) || g_sampler_stop.load()) return;
  OwnArray<uint8_t> rec;
  if (tasks_census(&rec, nullptr) && rec.n <= kRecBound) {
    SpinGuard g(g_rec_lock);
    std::memcpy(g_rec, rec.p, rec.n);
    g_rec_n = rec.n;
  }
  rec.release();
}

void* sampler_main(void*) {
  t_in_hook = true;  // the thread state PyGILState_Ensure makes is not the program's
  while (!g_sampler_stop.load()) {
    pollfd p{g_efd, POLLIN, 0};
    if (poll(&p, 1, 500) != 1) continue;
    uint64_t v;
    if (read(g_efd, &v, sizeof v) != sizeof v || g_sampler_stop.load()) continue;
    python_run_with_gil(sample_with_gil, nullptr);
  }
  g_sampler_running.store(false);
  return nullptr;
}

}  // namespace

void tasks_sampler_request() {
  if (g_py_state.load(std::memory_order_relaxed) != PyState::kInstalled || g_sampler_stop.load()) return;
  if (now_ns() < g_not_before_ns.load(std::memory_order_relaxed)) return;
  if (!g_sampler_started.exchange(true)) {
    g_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    g_sampler_running.store(true);
    if (g_efd < 0 || pthread_create(&t, &at, sampler_main, nullptr) != 0) g_sampler_running.store(false);
    pthread_attr_destroy(&at);
  }
  if (g_sampler_running.load() && g_efd >= 0) {
    uint64_t one = 1;
    ssize_t r = write(g_efd, &one, sizeof one);
    (void)r;
  }
}

size_t tasks_record_bound() { return kRecBound; }

size_t tasks_take_record(uint8_t* out, size_t room) {
  size_t n = 0;
  SpinGuard g(g_rec_lock);
  if (g_rec_n && g_rec_n <= room) {
    std::memcpy(out, g_rec, g_rec_n);
    n = g_rec_n;
  }
  g_rec_n = 0;
  return n;
}

// The interpreter is about to finalize: a thread that asks for the GIL from now on can hang
// the exit (3.9 waits in drop_gil for a switch that never comes once the asker exits), so the
// sampler is told to stop and, if it is running, the GIL is let go until it has left.
void tasks_sampler_stop_at_exit() {
  g_sampler_stop.store(true);
  if (!g_sampler_running.load()) return;
  if (g_efd >= 0) {
    uint64_t one = 1;
    ssize_t r = write(g_efd, &one, sizeof one);
    (void)r;
  }
  const PyObjectsApi* a = py_objects_api();
  void* ts = a ? a->save_thread() : nullptr;
  for (int i = 0; i < 2000 && g_sampler_running.load(); ++i) {
    timespec t{0, 1000 * 1000};
    nanosleep(&t, nullptr);
  }
  if (ts) a->restore_thread(ts);
}

void tasks_after_fork_child() {
  g_rec_lock.reset_in_fork_child();  // the parent's writer may have held it
  // Not before CPython's own after-fork handling (run after this atfork handler) is done.
  g_not_before_ns.store(now_ns() + 200 * 1000 * 1000);
  // The sampler thread is the parent's: the child starts its own when asked.
  if (g_efd >= 0) close(g_efd);
  g_efd = -1;
  g_sampler_running.store(false);
  g_sampler_started.store(false);
  g_rec_n = 0;
}

void tasks_sampler_stop() {
  g_sampler_stop.store(true);
  if (g_efd >= 0) {
    uint64_t one = 1;
    ssize_t r = write(g_efd, &one, sizeof one);
    (void)r;
  }
  // It may be waiting for the GIL; once it has it, it sees the stop and leaves.
  for (int i = 0; i < 2000 && g_sampler_running.load(); ++i) {
    timespec ts{0, 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  g_rec_n = 0;
  if (g_sampler_running.load()) return;  // still waiting for the GIL: it stops on its own
  if (g_efd >= 0) close(g_efd);
  g_efd = -1;
  g_sampler_started.store(false);
  g_sampler_stop.store(false);  // a later attach starts a new one
}

}  // namespace leakscope::agent

// The collector's view: see gc_view.h. The interpreter is found with dlsym (the agent links no
// libpython and loads into programs that have none); the per-version reads are python/gcstate.c.
#include "agent/spin_lock.h"
#include "agent/gc_view.h"

#include <dlfcn.h>

#include <atomic>

#include "agent/agent.h"

namespace leakscope::agent {
namespace {

constexpr size_t kCensusMax = 20u << 20;  // objects walked per list at most

struct Interp {
  void* (*main)() = nullptr;       // PyInterpreterState_Main
  int (*finalizing)() = nullptr;   // Py_IsFinalizing (3.13) / _Py_IsFinalizing
  const lsp_gcview* view = nullptr;
};

// Resolved on first use by whichever thread gets there (the writer, or a GIL holder): the first
// to claim it (state 2) publishes its result; another one waits the few loads that takes.
std::atomic<int> g_resolved{0};  // 0: not yet, 2: being published, 1: usable, -1: not available
Interp g_interp;

const Interp* interp() {
  if (g_py_state.load(std::memory_order_acquire) != PyState::kInstalled) return nullptr;
  int r = g_resolved.load(std::memory_order_acquire);
  if (r == 0) {
    Interp i;
    real_sym(i.main, "PyInterpreterState_Main");
    real_sym(i.finalizing, "Py_IsFinalizing");
    if (!i.finalizing) real_sym(i.finalizing, "_Py_IsFinalizing");
    i.view = lsp_gcstate_for_minor(g_py.minor);
    r = i.main && i.view ? 1 : -1;
    int expected = 0;
    if (g_resolved.compare_exchange_strong(expected, 2, std::memory_order_acq_rel)) {
      g_interp = i;
      g_resolved.store(r, std::memory_order_release);
    }
    while ((r = g_resolved.load(std::memory_order_acquire)) == 2) {
    }
  }
  if (r != 1) return nullptr;
  if (g_interp.finalizing && g_interp.finalizing()) return nullptr;
  return &g_interp;
}

uint64_t clamp0(int64_t v) { return v > 0 ? static_cast<uint64_t>(v) : 0; }

// A census handed over by gc_census_note, taken by the next record. The lock is held for a
// copy of a few words on either side.
SpinLock g_census_lock;
bool g_census_ready = false;
lsp_gc_census g_census;

bool take_census(lsp_gc_census* out) {
  SpinGuard l(g_census_lock);
  if (!g_census_ready) return false;
  *out = g_census;
  g_census_ready = false;
  return true;
}

}  // namespace

uint8_t* put_gcstats(uint8_t* p, uint64_t t_ns) {
  const Interp* in = interp();
  if (!in) return p;
  void* is = in->main();
  if (!is) return p;
  lsp_gcstate st{};
  in->view->read(is, &st);
  capture::GcStats g;
  g.time_ns = t_ns;
  g.flags = (st.enabled ? capture::kGcEnabled : 0) | (st.collecting ? capture::kGcCollecting : 0);
  g.debug = clamp0(st.debug);
  for (int i = 0; i < 3; ++i) {
    g.count[i] = clamp0(st.count[i]);
    g.threshold[i] = clamp0(st.threshold[i]);
    g.collections[i] = clamp0(st.collections[i]);
    g.collected[i] = clamp0(st.collected[i]);
    g.uncollectable[i] = clamp0(st.uncollectable[i]);
  }
  g.garbage = clamp0(st.garbage);
  g.long_lived_total = clamp0(st.long_lived_total);
  g.long_lived_pending = clamp0(st.long_lived_pending);
  if (lsp_gc_census c; take_census(&c)) {
    g.flags |= capture::kGcCensus | (c.complete ? capture::kGcCensusComplete : 0);
    for (int i = 0; i < 3; ++i) g.objects[i] = clamp0(c.generation[i]);
    g.frozen = clamp0(c.frozen);
  }
  return capture::put_gcstats(p, g);
}

bool gc_census(lsp_gc_census* out) {
  const Interp* in = interp();
  if (!in) return false;
  void* is = in->main();
  if (!is) return false;
  return in->view->census(is, out, kCensusMax) != 0;
}

void gc_census_note(const lsp_gc_census& c) {
  SpinGuard l(g_census_lock);  // a note the writer has not taken yet is replaced
  g_census = c;
  g_census_ready = true;
}

void gc_view_after_fork_child() { g_census_lock.reset_in_fork_child(); }

}  // namespace leakscope::agent

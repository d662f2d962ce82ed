// CPython integration: find the interpreter, and once it is initialised install the PyMem
// allocator wrappers (RAW, MEM, OBJ, arenas) from a Py_AddPendingCall callback, i.e. on the
// main thread at a safe point with the GIL held, chaining to the allocators already in place.
// Nothing is added to sys.path, the environment or sitecustomize. An atexit callback stops
// tracking before the interpreter tears objects down, so "live" is what the program held.
#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/agent.h"
#include "agent/asyncio_tasks.h"
#include "agent/gc_view.h"
#include "python/versions.h"

namespace leakscope::agent {

char g_python_version[48];

PythonApi g_py;
std::atomic<PyState> g_py_state{PyState::kNone};

namespace {
// The stable ABI structs (Include/cpython/pymem.h, Include/cpython/objimpl.h).
struct PyMemAllocatorEx {
  void* ctx;
  void* (*malloc)(void*, size_t);
  void* (*calloc)(void*, size_t, size_t);
  void* (*realloc)(void*, void*, size_t);
  void (*free)(void*, void*);
};
struct PyObjectArenaAllocator {
  void* ctx;
  void* (*alloc)(void*, size_t);
  void (*free)(void*, void*, size_t);
};
enum { kDomainRaw = 0, kDomainMem = 1, kDomainObj = 2 };

struct Api {
  int (*is_initialized)();
  int (*add_pending_call)(int (*)(void*), void*);
  const char* (*get_version)();
  void (*get_allocator)(int, PyMemAllocatorEx*);
  void (*set_allocator)(int, PyMemAllocatorEx*);
  void (*get_arena)(PyObjectArenaAllocator*);
  void (*set_arena)(PyObjectArenaAllocator*);
  void* (*import_module)(const char*);
  void* (*get_attr_string)(void*, const char*);
  void* (*cfunction_new_ex)(void*, void*, void*);
  void* (*call_one_arg)(void*, void*, void*);  // PyObject_CallFunctionObjArgs(callable, arg, NULL)
  void (*err_clear)();
  void (*decref)(void*);  // Py_DecRef
  void (*incref)(void*);  // Py_IncRef
  int (*gil_ensure)();             // PyGILState_Ensure (attach: any thread, GIL or not)
  void (*gil_release)(int);        // PyGILState_Release
  int (*is_finalizing)();          // Py_IsFinalizing (3.13) / _Py_IsFinalizing
} g_api;

struct Domain {
  PyMemAllocatorEx orig;
  uint8_t tag;
};
Domain g_dom_raw, g_dom_mem, g_dom_obj;
PyObjectArenaAllocator g_arena_orig;


// ---- P stream (MEM, OBJ): GIL held, so the ring has a single producer.
__attribute__((noinline)) void py_record_alloc_slow(uint8_t tag, void* p, size_t n, void* ret, void* cfa) {
  // Parked around a fork (>= 3.12): restart the writer once there is something to write.
  if (LSP_UNLIKELY(g_writer_parked.load(std::memory_order_relaxed))) writer_maybe_unpark();
  if (g_sample_rate) sampled_remember(p);
  put_alloc_record(g_ring_py, tag, p, n, capture_stack(StackMode::kPyGil, ret, cfa));
}
// Keeps the unsampled case free of the slow path's register saves.
inline void py_record_alloc(uint8_t tag, void* p, size_t n, void* ret, void* cfa) {
  if (g_sample_rate && LSP_LIKELY(!sample_take(n))) return;
  py_record_alloc_slow(tag, p, n, ret, cfa);
}
inline void py_record_free(void* p) {
  if (g_sample_rate && LSP_LIKELY(!sampled_forget(p))) return;
  put_addr_record(g_ring_py, capture::kFree, p, 0, false);
}

// Set while a MEM/OBJ wrapper calls the allocator it wraps. A RAW free or realloc nested in it
// is of a block pymalloc got from the raw allocator (a large object, or pymalloc's own arena
// table, which new_arena grows from inside a malloc); that block may have been malloc'd before
// the wrappers were in, and so be live in the N stream: the nested free is recorded there
// (before the memory goes back), or it would stay live for ever. (Blocks allocated nested are
// not recorded: their recorded frees are unknown frees, ignored.)
constinit thread_local bool t_in_pymem = false;
struct InPyMem {
  InPyMem() { t_in_pymem = true; }
  ~InPyMem() { t_in_pymem = false; }
};

// Sampling: most calls are not sampled. They count down and call through with the reentrancy
// flag set (so nested layers do not count the same bytes again) on a path that saves no
// registers; everything else is in the *_full functions.
__attribute__((noinline)) void* py_malloc_full(Domain* d, size_t n, void* ret, void* cfa) {
  HookGuard g;
  void* p;
  {
    InPyMem in;
    p = d->orig.malloc(d->orig.ctx, n);
  }
  if (p && g_enabled.load(std::memory_order_relaxed)) py_record_alloc(d->tag, p, n, ret, cfa);
  return p;
}
void* py_malloc(void* ctx, size_t n) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.malloc(d->orig.ctx, n);
  if (g_sample_rate && sample_countdown(n)) {
    HookGuard g;
    return d->orig.malloc(d->orig.ctx, n);
  }
  return py_malloc_full(d, n, __builtin_return_address(0), __builtin_dwarf_cfa());
}
__attribute__((noinline)) void* py_calloc_full(Domain* d, size_t nelem, size_t elsize, void* ret, void* cfa) {
  HookGuard g;
  void* p;
  {
    InPyMem in;
    p = d->orig.calloc(d->orig.ctx, nelem, elsize);
  }
  if (p && g_enabled.load(std::memory_order_relaxed)) py_record_alloc(d->tag, p, nelem * elsize, ret, cfa);
  return p;
}
void* py_calloc(void* ctx, size_t nelem, size_t elsize) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.calloc(d->orig.ctx, nelem, elsize);
  if (g_sample_rate && sample_countdown(nelem * elsize)) {
    HookGuard g;
    return d->orig.calloc(d->orig.ctx, nelem, elsize);
  }
  return py_calloc_full(d, nelem, elsize, __builtin_return_address(0), __builtin_dwarf_cfa());
}

__attribute__((noinline)) void* py_realloc_full(Domain* d, void* old, size_t n, void* ret, void* cfa);
void* py_realloc(void* ctx, void* old, size_t n) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.realloc(d->orig.ctx, old, n);
  if (g_sample_rate && LSP_LIKELY(!old || !sampled_maybe(old)) && sample_countdown(n)) {
    HookGuard g;
    return d->orig.realloc(d->orig.ctx, old, n);
  }
  return py_realloc_full(d, old, n, __builtin_return_address(0), __builtin_dwarf_cfa());
}
void* py_realloc_full(Domain* d, void* old, size_t n, void* ret, void* cfa) {
  HookGuard g;
  bool on = g_enabled.load(std::memory_order_relaxed);
  void* p;
  {
    InPyMem in;
    p = d->orig.realloc(d->orig.ctx, old, n);
  }
  // GIL held: nobody can reuse `old` between the realloc and these records.
  if (p && on) {
    if (old) py_record_free(old);
    py_record_alloc(d->tag, p, n, ret, cfa);
  }
  return p;
}
__attribute__((noinline)) void py_free_full(Domain* d, void* p) {
  HookGuard g;
  if (g_enabled.load(std::memory_order_relaxed)) {
    if (LSP_UNLIKELY(code_filter_hit(p))) code_freed(p);
    py_record_free(p);
  }
  InPyMem in;
  d->orig.free(d->orig.ctx, p);
}
void py_free(void* ctx, void* p) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook || p == nullptr) return d->orig.free(d->orig.ctx, p);
  // Sampling: a block no sample and no interned code object can be at (one filter load: code
  // objects are marked in the sample filter too) is freed by a tail call. No reentrancy flag is
  // needed: frees are not counted by the sampler, and a nested RAW free of the same block (a
  // large object) checks the same filter and finds nothing to record either.
  if (g_sample_rate && LSP_LIKELY(!sampled_maybe(p))) return d->orig.free(d->orig.ctx, p);
  py_free_full(d, p);
}

// ---- RAW: any thread, GIL or not: the N stream.
// RAW is called without the GIL, so installing or removing these wrappers races with other
// threads reading the allocator struct: a thread may pair our function with the original
// ctx. The wrappers therefore never read ctx.
void* raw_malloc(void*, size_t n) {
  Domain* d = &g_dom_raw;
  if (t_in_hook) return d->orig.malloc(d->orig.ctx, n);
  HookGuard g;
  void* p = d->orig.malloc(d->orig.ctx, n);
  if (p && g_enabled.load(std::memory_order_relaxed)) record_alloc_native(capture::kAllocRaw, p, n, LSP_CALLER);
  return p;
}
void* raw_calloc(void*, size_t nelem, size_t elsize) {
  Domain* d = &g_dom_raw;
  if (t_in_hook) return d->orig.calloc(d->orig.ctx, nelem, elsize);
  HookGuard g;
  void* p = d->orig.calloc(d->orig.ctx, nelem, elsize);
  if (p && g_enabled.load(std::memory_order_relaxed))
    record_alloc_native(capture::kAllocRaw, p, nelem * elsize, LSP_CALLER);
  return p;
}
void* raw_realloc(void*, void* old, size_t n) {
  Domain* d = &g_dom_raw;
  if (t_in_hook) {
    if (LSP_UNLIKELY(t_in_pymem) && old && g_enabled.load(std::memory_order_relaxed)) record_free_native(old);
    return d->orig.realloc(d->orig.ctx, old, n);
  }
  HookGuard g;
  bool on = g_enabled.load(std::memory_order_relaxed);
  if (on && old) record_free_native(old);  // before: another thread may reuse it at once
  void* p = d->orig.realloc(d->orig.ctx, old, n);
  if (on) {
    if (p) record_alloc_native(capture::kAllocRaw, p, n, LSP_CALLER);
    else if (old && n) record_alloc_native(capture::kAllocRaw, old, g_real.malloc_usable_size(old), LSP_CALLER);
  }
  return p;
}
void raw_free(void*, void* p) {
  Domain* d = &g_dom_raw;
  if (t_in_hook || p == nullptr) {
    if (LSP_UNLIKELY(t_in_pymem) && p && g_enabled.load(std::memory_order_relaxed)) record_free_native(p);
    return d->orig.free(d->orig.ctx, p);
  }
  HookGuard g;
  if (g_enabled.load(std::memory_order_relaxed)) record_free_native(p);
  d->orig.free(d->orig.ctx, p);
}

// ---- pymalloc arenas (GIL held)
void* arena_alloc(void* ctx, size_t n) {
  HookGuard g;
  void* p = g_arena_orig.alloc(g_arena_orig.ctx, n);
  if (p) {
    g_arena_bytes.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
    if (g_enabled.load(std::memory_order_relaxed)) put_addr_record(g_ring_py, capture::kArenaAlloc, p, n, true);
  }
  return p;
}
void arena_free(void* ctx, void* p, size_t n) {
  HookGuard g;
  if (p) {
    g_arena_bytes.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
    if (g_enabled.load(std::memory_order_relaxed)) put_addr_record(g_ring_py, capture::kArenaFree, p, n, true);
  }
  g_arena_orig.free(g_arena_orig.ctx, p, n);
}

// PyMethodDef for the atexit callback (METH_NOARGS = 0x0004).
struct PyMethodDefAbi {
  const char* name;
  void* (*meth)(void*, void*);
  int flags;
  const char* doc;
};
void* g_none = nullptr;
void* on_python_exit(void*, void*) {
  tasks_sampler_stop_at_exit();  // no thread of ours may ask for the GIL during finalization
  ScanRequester r;
  capture_requester(&r);
  const bool retain = retention_ready();
  // The exact objects per generation and gc.freeze()'s, for the final GCSTATS (GIL held here).
  if (lsp_gc_census c; g_enabled.load() && gc_census(&c)) gc_census_note(c);
  agent_stop("python-atexit", &r);
  if (retain) retention_after_stop();  // after the final snapshot: the pause is not in the series
  g_api.incref(g_none);  // METH_NOARGS returns a new reference
  return g_none;
}
PyMethodDefAbi g_exit_def = {"_leakscope_stop", on_python_exit, 0x0004, nullptr};

void register_atexit() {
  void* m = g_api.import_module("atexit");
  if (!m) { g_api.err_clear(); agent_message("leakscope: cannot import atexit; tracking stops at process exit"); return; }
  void* reg = g_api.get_attr_string(m, "register");
  void* fn = reg ? g_api.cfunction_new_ex(&g_exit_def, nullptr, nullptr) : nullptr;
  void* res = fn ? g_api.call_one_arg(reg, fn, nullptr) : nullptr;
  if (!res) { g_api.err_clear(); agent_message("leakscope: cannot register an atexit callback; tracking stops at process exit"); }
  if (res) g_api.decref(res);
  if (fn) g_api.decref(fn);
  if (reg) g_api.decref(reg);
  g_api.decref(m);
}

bool g_atexit_registered = false;
int install_cb(void*) {
  HookGuard guard;
  if (g_py_state.load() != PyState::kScheduled) return 0;
  if (!g_enabled.load()) {  // detached (or stopped) before we got here
    g_py_state.store(PyState::kNone);
    return 0;
  }
  if (!g_atexit_registered) register_atexit();  // once: it outlives a detach, and does nothing then
  g_atexit_registered = true;
  PyMemAllocatorEx a;
  // The allocators in place become the originals, unless they are ours already (a tool such as
  // tracemalloc put our wrappers back after a detach): then the recorded originals stay.
  g_api.get_allocator(kDomainRaw, &a);
  if (a.malloc != raw_malloc) g_dom_raw.orig = a;
  g_api.get_allocator(kDomainMem, &a);
  if (a.malloc != py_malloc) g_dom_mem.orig = a;
  g_api.get_allocator(kDomainObj, &a);
  if (a.malloc != py_malloc) g_dom_obj.orig = a;
  g_dom_raw.tag = capture::kAllocRaw;
  g_dom_mem.tag = capture::kAllocMem;
  g_dom_obj.tag = capture::kAllocObj;
  PyObjectArenaAllocator cur;
  g_api.get_arena(&cur);
  if (cur.alloc != arena_alloc) g_arena_orig = cur;
  // Mark installed before the swap so the very first wrapped call can walk frames.
  g_py_state.store(PyState::kInstalled);
  a = {&g_dom_raw, raw_malloc, raw_calloc, raw_realloc, raw_free};
  g_api.set_allocator(kDomainRaw, &a);
  a = {&g_dom_mem, py_malloc, py_calloc, py_realloc, py_free};
  g_api.set_allocator(kDomainMem, &a);
  a = {&g_dom_obj, py_malloc, py_calloc, py_realloc, py_free};
  g_api.set_allocator(kDomainObj, &a);
  PyObjectArenaAllocator ar = {nullptr, arena_alloc, arena_free};
  g_api.set_arena(&ar);
  return 0;
}

bool eval_range() {
  void* f = g_real.dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
  if (!f) return false;
  Dl_info info;
  ElfW(Sym)* symp = nullptr;
  if (dladdr1(f, &info, reinterpret_cast<void**>(&symp), RTLD_DL_SYMENT) == 0 || !symp) return false;
  g_py.eval_lo = reinterpret_cast<uintptr_t>(f);
  g_py.eval_hi = g_py.eval_lo + (symp->st_size ? symp->st_size : 1);
  return true;
}
}  // namespace

void python_detect() {
  if (g_py_state.load() != PyState::kNone) return;
  if (!real_sym(g_api.is_initialized, "Py_IsInitialized")) return;
  bool ok = real_sym(g_api.add_pending_call, "Py_AddPendingCall") && real_sym(g_api.get_version, "Py_GetVersion") &&
            real_sym(g_api.get_allocator, "PyMem_GetAllocator") &&
            real_sym(g_api.set_allocator, "PyMem_SetAllocator") &&
            real_sym(g_api.get_arena, "PyObject_GetArenaAllocator") &&
            real_sym(g_api.set_arena, "PyObject_SetArenaAllocator") &&
            real_sym(g_api.import_module, "PyImport_ImportModule") &&
            real_sym(g_api.get_attr_string, "PyObject_GetAttrString") &&
            real_sym(g_api.cfunction_new_ex, "PyCFunction_NewEx") &&
            real_sym(g_api.call_one_arg, "PyObject_CallFunctionObjArgs") &&
            real_sym(g_api.err_clear, "PyErr_Clear") && real_sym(g_api.decref, "Py_DecRef") &&
            real_sym(g_api.incref, "Py_IncRef") &&
            real_sym(g_py.tstate_this_thread, "PyGILState_GetThisThreadState") &&
            real_sym(g_none, "_Py_NoneStruct") && real_sym(g_api.gil_ensure, "PyGILState_Ensure") &&
            real_sym(g_api.gil_release, "PyGILState_Release");
  if (!real_sym(g_api.is_finalizing, "Py_IsFinalizing")) real_sym(g_api.is_finalizing, "_Py_IsFinalizing");
  if (!real_sym(g_py.tstate_unchecked, "PyThreadState_GetUnchecked"))
    ok = ok && real_sym(g_py.tstate_unchecked, "_PyThreadState_UncheckedGet");
  g_py.code_type = g_real.dlsym(RTLD_DEFAULT, "PyCode_Type");
  const char* v = ok ? g_api.get_version() : nullptr;
  int major = 0, minor = 0;
  if (v) sscanf(v, "%d.%d", &major, &minor);
  g_py.minor = minor;
  g_py.walker = major == 3 ? lsp_walker_for_minor(minor) : nullptr;
  char msg[160];
  if (!ok || !g_py.walker || !g_py.code_type) {
    snprintf(msg, sizeof msg, "leakscope: Python %d.%d is not supported; only C-level allocations are tracked", major, minor);
    agent_message(msg);
    g_py_state.store(PyState::kFailed);
    return;
  }
  eval_range();
  uint8_t rec[96];
  uint8_t* p = rec;
  *p++ = capture::kInfo;
  p = capture::put_bytes(p, "python_version", 14);
  size_t vl = strcspn(v, " ");
  if (vl > 40) vl = 40;
  p = capture::put_bytes(p, v, vl);
  snprintf(g_python_version, sizeof g_python_version, "%.*s", static_cast<int>(vl), v);  // a followed fork's too
  defs_lock();
  emit_def_locked(rec, static_cast<size_t>(p - rec));
  defs_unlock();
  g_py_state.store(PyState::kPending);
}

bool g_python_attached = false;

namespace {
bool finalizing() { return g_api.is_finalizing && g_api.is_finalizing(); }

// Attach: the main thread may sit in accept() or sleep() for hours, so no pending call; a
// thread of ours takes the GIL like any foreign thread (released by blocked threads at once,
// by a thread running Python within the switch interval) and installs the wrappers.
void* installer_main(void*) {
  t_in_hook = true;
  if (g_api.is_initialized() && !finalizing()) {
    int st = g_api.gil_ensure();
    install_cb(nullptr);
    g_api.gil_release(st);
  } else {
    g_py_state.store(PyState::kPending);
  }
  return nullptr;
}
}  // namespace

void python_maybe_schedule() {
  if (g_py_state.load(std::memory_order_relaxed) != PyState::kPending) return;
  if (!g_api.is_initialized()) return;
  PyState expected = PyState::kPending;
  if (!g_py_state.compare_exchange_strong(expected, PyState::kScheduled)) return;
  if (g_python_attached) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    if (pthread_create(&t, &a, installer_main, nullptr) != 0) g_py_state.store(PyState::kPending);
    pthread_attr_destroy(&a);
    return;
  }
  if (g_api.add_pending_call(install_cb, nullptr) != 0) {
    g_py_state.store(PyState::kPending);  // queue full: try again on the next round
  }
}

int python_probe(char* why, size_t n) {
  int (*initialized)() = nullptr;
  const char* (*version)() = nullptr;
  if (!real_sym(initialized, "Py_IsInitialized") || !real_sym(version, "Py_GetVersion")) return 0;
  int major = 0, minor = 0;
  const char* v = version();
  if (v) sscanf(v, "%d.%d", &major, &minor);
  if (major == 3 && lsp_walker_for_minor(minor)) return 1;
  size_t vl = v ? strcspn(v, " ") : 0;
  snprintf(why, n, "Python %.*s is not supported (leakscope supports 3.%d to 3.%d)", static_cast<int>(vl > 20 ? 20 : vl),
           v ? v : "?", python_versions::kOldestMinor, python_versions::kNewestMinor);
  return -1;
}

bool python_run_with_gil(void (*fn)(void*), void* arg) {
  if (g_py_state.load() != PyState::kInstalled || !g_api.is_initialized() || finalizing()) return false;
  int st = g_api.gil_ensure();
  fn(arg);
  g_api.gil_release(st);
  return true;
}

bool python_gil_frame(PyFramePosition* out) {
  if (g_py_state.load() != PyState::kInstalled || !g_py.walker || !g_py.tstate_unchecked) return false;
  const void* tstate = g_py.tstate_unchecked();
  lsp_pyframe f{};
  if (!tstate || g_py.walker->walk(tstate, &f, 1, g_py.code_type) < 1) return false;
  *out = PyFramePosition{tstate, f.code, f.instr};
  return true;
}

bool python_walkable_slow(PyState st) {
  return (st == PyState::kPending || st == PyState::kScheduled) && g_py.walker && g_api.is_initialized &&
         g_api.is_initialized();
}

void python_uninstall() {
  // An installer may be past its enabled check: let it finish (it is quick once it has the GIL).
  for (int i = 0; i < 2000 && g_py_state.load() == PyState::kScheduled; ++i) {
    timespec ts{0, 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  PyState st = g_py_state.load();
  if (st == PyState::kInstalled && g_api.is_initialized() && !finalizing()) {
    int gs = g_api.gil_ensure();
    // Only where ours are still in place (another tool may have chained onto them since).
    PyMemAllocatorEx a;
    g_api.get_allocator(kDomainMem, &a);
    if (a.malloc == py_malloc && a.ctx == &g_dom_mem) g_api.set_allocator(kDomainMem, &g_dom_mem.orig);
    g_api.get_allocator(kDomainObj, &a);
    if (a.malloc == py_malloc && a.ctx == &g_dom_obj) g_api.set_allocator(kDomainObj, &g_dom_obj.orig);
    g_api.get_allocator(kDomainRaw, &a);
    if (a.malloc == raw_malloc) g_api.set_allocator(kDomainRaw, &g_dom_raw.orig);
    PyObjectArenaAllocator cur;
    g_api.get_arena(&cur);
    if (cur.alloc == arena_alloc) g_api.set_arena(&g_arena_orig);
    g_api.gil_release(gs);
  } else if (st == PyState::kScheduled) {
    return;  // the installer never finished: it sees recording is off and installs nothing
  }
  g_py_state.store(PyState::kNone);
  g_arena_bytes.store(0);
}

}  // namespace leakscope::agent

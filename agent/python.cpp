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

namespace leakscope::agent {

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
} g_api;

struct Domain {
  PyMemAllocatorEx orig;
  uint8_t tag;
};
Domain g_dom_raw, g_dom_mem, g_dom_obj;
PyObjectArenaAllocator g_arena_orig;

template <typename T>
bool sym(T& out, const char* name) {
  out = reinterpret_cast<T>(g_real.dlsym(RTLD_DEFAULT, name));
  return out != nullptr;
}

// ---- P stream (MEM, OBJ): GIL held, so the ring has a single producer.
__attribute__((noinline)) void py_record_alloc_slow(uint8_t tag, void* p, size_t n, void* ret) {
  // Parked around a fork (>= 3.12): restart the writer once there is something to write.
  if (LSP_UNLIKELY(g_writer_parked.load(std::memory_order_relaxed))) writer_maybe_unpark();
  if (g_sample_rate) sampled_remember(p);
  put_alloc_record(g_ring_py, tag, p, n, capture_stack(StackMode::kPyGil, ret, nullptr));
}
// Keeps the unsampled case free of the slow path's register saves.
inline void py_record_alloc(uint8_t tag, void* p, size_t n, void* ret) {
  if (g_sample_rate && LSP_LIKELY(!sample_take(n))) return;
  py_record_alloc_slow(tag, p, n, ret);
}
inline void py_record_free(void* p) {
  if (g_sample_rate && LSP_LIKELY(!sampled_forget(p))) return;
  put_addr_record(g_ring_py, capture::kFree, p, 0, false);
}

void* py_malloc(void* ctx, size_t n) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.malloc(d->orig.ctx, n);
  HookGuard g;
  void* p = d->orig.malloc(d->orig.ctx, n);
  if (p && g_enabled.load(std::memory_order_relaxed)) py_record_alloc(d->tag, p, n, __builtin_return_address(0));
  return p;
}
void* py_calloc(void* ctx, size_t nelem, size_t elsize) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.calloc(d->orig.ctx, nelem, elsize);
  HookGuard g;
  void* p = d->orig.calloc(d->orig.ctx, nelem, elsize);
  if (p && g_enabled.load(std::memory_order_relaxed)) py_record_alloc(d->tag, p, nelem * elsize, __builtin_return_address(0));
  return p;
}
void* py_realloc(void* ctx, void* old, size_t n) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.realloc(d->orig.ctx, old, n);
  HookGuard g;
  bool on = g_enabled.load(std::memory_order_relaxed);
  void* p = d->orig.realloc(d->orig.ctx, old, n);
  // GIL held: nobody can reuse `old` between the realloc and these records.
  if (p && on) {
    if (old) py_record_free(old);
    py_record_alloc(d->tag, p, n, __builtin_return_address(0));
  }
  return p;
}
void py_free(void* ctx, void* p) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook || p == nullptr) return d->orig.free(d->orig.ctx, p);
  HookGuard g;
  if (g_enabled.load(std::memory_order_relaxed)) {
    if (LSP_UNLIKELY(code_filter_hit(p))) code_freed(p);
    py_record_free(p);
  }
  d->orig.free(d->orig.ctx, p);
}

// ---- RAW: any thread, GIL or not: the N stream.
void* raw_malloc(void* ctx, size_t n) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.malloc(d->orig.ctx, n);
  HookGuard g;
  void* p = d->orig.malloc(d->orig.ctx, n);
  if (p && g_enabled.load(std::memory_order_relaxed)) record_alloc_native(capture::kAllocRaw, p, n, LSP_CALLER);
  return p;
}
void* raw_calloc(void* ctx, size_t nelem, size_t elsize) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.calloc(d->orig.ctx, nelem, elsize);
  HookGuard g;
  void* p = d->orig.calloc(d->orig.ctx, nelem, elsize);
  if (p && g_enabled.load(std::memory_order_relaxed))
    record_alloc_native(capture::kAllocRaw, p, nelem * elsize, LSP_CALLER);
  return p;
}
void* raw_realloc(void* ctx, void* old, size_t n) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook) return d->orig.realloc(d->orig.ctx, old, n);
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
void raw_free(void* ctx, void* p) {
  Domain* d = static_cast<Domain*>(ctx);
  if (t_in_hook || p == nullptr) return d->orig.free(d->orig.ctx, p);
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
  agent_stop("python-atexit");
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

int install_cb(void*) {
  HookGuard guard;
  if (g_py_state.load() != PyState::kScheduled) return 0;
  register_atexit();
  PyMemAllocatorEx a;
  g_api.get_allocator(kDomainRaw, &g_dom_raw.orig);
  g_api.get_allocator(kDomainMem, &g_dom_mem.orig);
  g_api.get_allocator(kDomainObj, &g_dom_obj.orig);
  g_dom_raw.tag = capture::kAllocRaw;
  g_dom_mem.tag = capture::kAllocMem;
  g_dom_obj.tag = capture::kAllocObj;
  g_api.get_arena(&g_arena_orig);
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
  if (!sym(g_api.is_initialized, "Py_IsInitialized")) return;
  bool ok = sym(g_api.add_pending_call, "Py_AddPendingCall") && sym(g_api.get_version, "Py_GetVersion") &&
            sym(g_api.get_allocator, "PyMem_GetAllocator") && sym(g_api.set_allocator, "PyMem_SetAllocator") &&
            sym(g_api.get_arena, "PyObject_GetArenaAllocator") && sym(g_api.set_arena, "PyObject_SetArenaAllocator") &&
            sym(g_api.import_module, "PyImport_ImportModule") && sym(g_api.get_attr_string, "PyObject_GetAttrString") &&
            sym(g_api.cfunction_new_ex, "PyCFunction_NewEx") && sym(g_api.call_one_arg, "PyObject_CallFunctionObjArgs") &&
            sym(g_api.err_clear, "PyErr_Clear") && sym(g_api.decref, "Py_DecRef") && sym(g_api.incref, "Py_IncRef") &&
            sym(g_py.tstate_this_thread, "PyGILState_GetThisThreadState") && sym(g_none, "_Py_NoneStruct");
  if (!sym(g_py.tstate_unchecked, "PyThreadState_GetUnchecked")) ok = ok && sym(g_py.tstate_unchecked, "_PyThreadState_UncheckedGet");
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
  defs_lock();
  emit_def_locked(rec, static_cast<size_t>(p - rec));
  defs_unlock();
  g_py_state.store(PyState::kPending);
}

void python_maybe_schedule() {
  if (g_py_state.load(std::memory_order_relaxed) != PyState::kPending) return;
  if (!g_api.is_initialized()) return;
  PyState expected = PyState::kPending;
  if (!g_py_state.compare_exchange_strong(expected, PyState::kScheduled)) return;
  if (g_api.add_pending_call(install_cb, nullptr) != 0) {
    g_py_state.store(PyState::kPending);  // queue full: try again on the next round
  }
}

}  // namespace leakscope::agent

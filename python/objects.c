/* One CPython version's object introspection for the retention walk; see objects.h. Compiled
 * five times with LSP_PY_TAG in {39,310,311,312,313}. Version facts:
 *   instance attributes: tp_dictoffset (all), 3.11 managed dict or values (ptr[-3], ptr[-4]),
 *     3.12 dict-or-values (ptr[-3], tagged), 3.13 inline values after the header (`valid`)
 *     or a managed dict; the names of values are the type's cached keys, in entry order
 *   frame locals: 3.9/3.10 f_localsplus (varnames, cellvars, freevars); 3.11+ localsplus with
 *     co_localsplusnames; 3.13 f_executable */
#include "python/objects.h"

#include "python/per_version.h"

#if LSP_HAVE_HEADERS
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include "internal/pycore_gc.h"
#if LSP_PY_TAG >= 311
#include "internal/pycore_frame.h"
#include "internal/pycore_code.h"
#include "internal/pycore_object.h"
#include "internal/pycore_dict.h"
#endif

typedef struct {
  lsp_edge_cb cb;
  void* ctx;
  int kind;
} lsp_visit_arg;

static int lsp_visit(PyObject* o, void* varg) {
  lsp_visit_arg* a = (lsp_visit_arg*)varg;
  if (o != NULL) a->cb(a->ctx, o, a->kind, 0);
  return 0;
}

/* PyObject_IS_GC without the function call: the type says so and, for types of types, the
 * object is a heap type (static types are never traversed). */
static int lsp_is_gc(PyObject* o) {
  PyTypeObject* t = Py_TYPE(o);
  if (!(t->tp_flags & Py_TPFLAGS_HAVE_GC) || t->tp_traverse == NULL) return 0;
  if (PyType_Check(o)) return (((PyTypeObject*)o)->tp_flags & Py_TPFLAGS_HEAPTYPE) != 0;
  return 1;
}

static int lsp_is_module(const lsp_pyapi* api, PyTypeObject* t) {
  for (int depth = 0; t != NULL && depth < 16; ++depth, t = t->tp_base)
    if ((void*)t == api->module_type) return 1;
  return 0;
}

/* The name of localsplus slot i of a code object (borrowed), or NULL. */
static PyObject* lsp_local_name(PyCodeObject* co, int i) {
#if LSP_PY_TAG >= 311
  PyObject* names = co->co_localsplusnames;
  if (names == NULL || !PyTuple_Check(names) || i >= PyTuple_GET_SIZE(names)) return NULL;
  return PyTuple_GET_ITEM(names, i);
#else
  PyObject* parts[3] = {co->co_varnames, co->co_cellvars, co->co_freevars};
  for (int p = 0; p < 3; ++p) {
    if (parts[p] == NULL || !PyTuple_Check(parts[p])) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(parts[p]);
    if (i < n) return PyTuple_GET_ITEM(parts[p], i);
    i -= (int)n;
  }
  return NULL;
#endif
}

static int lsp_nlocalsplus(PyCodeObject* co) {
#if LSP_PY_TAG >= 311
  return co->co_nlocalsplus;
#else
  int n = co->co_nlocals;
  if (co->co_cellvars != NULL && PyTuple_Check(co->co_cellvars)) n += (int)PyTuple_GET_SIZE(co->co_cellvars);
  if (co->co_freevars != NULL && PyTuple_Check(co->co_freevars)) n += (int)PyTuple_GET_SIZE(co->co_freevars);
  return n;
#endif
}

static void lsp_locals(PyCodeObject* co, PyObject** localsplus, lsp_edge_cb cb, void* ctx) {
  int n = lsp_nlocalsplus(co);
  for (int i = 0; i < n; ++i)
    if (localsplus[i] != NULL) cb(ctx, localsplus[i], LSP_EDGE_LOCAL, (uintptr_t)lsp_local_name(co, i));
}

#if LSP_PY_TAG >= 311
static PyCodeObject* lsp_iframe_code(const lsp_pyapi* api, _PyInterpreterFrame* f) {
#if LSP_PY_TAG >= 313
  PyObject* exe = f->f_executable;
  if (exe == NULL || (void*)Py_TYPE(exe) != api->code_type) return NULL;
  return (PyCodeObject*)exe;
#else
  (void)api;
  return f->f_code;
#endif
}
#endif

/* A function's closure: cell i is named by the code's i-th free variable. */
static void lsp_function_edges(PyFunctionObject* fn, lsp_edge_cb cb, void* ctx) {
  PyObject* closure = fn->func_closure;
  PyCodeObject* co = (PyCodeObject*)fn->func_code;
  if (closure != NULL && PyTuple_Check(closure) && co != NULL) {
    Py_ssize_t n = PyTuple_GET_SIZE(closure);
    int first = lsp_nlocalsplus(co) - (int)n; /* free variables come last */
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* cell = PyTuple_GET_ITEM(closure, i);
      if (cell != NULL) cb(ctx, cell, LSP_EDGE_CLOSURE, (uintptr_t)(first >= 0 ? lsp_local_name(co, first + (int)i) : NULL));
    }
  }
  if (fn->func_defaults != NULL) cb(ctx, fn->func_defaults, LSP_EDGE_DEFAULTS, 0);
  if (fn->func_kwdefaults != NULL) cb(ctx, fn->func_kwdefaults, LSP_EDGE_KWDEFAULTS, 0);
}

/* Instance attributes: a dict (reached as a namespace) or, 3.11+, values named by the type's
 * cached keys. Never materialises a dict. */
static void lsp_instance_edges(PyObject* o, lsp_edge_cb cb, void* ctx) {
  PyTypeObject* t = Py_TYPE(o);
  PyObject* dict = NULL;
#if LSP_PY_TAG >= 311
  if (t->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
    PyDictValues* values = NULL;
#if LSP_PY_TAG == 311
    values = *_PyObject_ValuesPointer(o);
    if (values == NULL) dict = *_PyObject_ManagedDictPointer(o);
#elif LSP_PY_TAG == 312
    PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
    if (_PyDictOrValues_IsValues(dorv))
      values = _PyDictOrValues_GetValues(dorv);
    else
      dict = dorv.dict;
#else
    dict = (PyObject*)_PyObject_GetManagedDict(o);
    if (dict == NULL && (t->tp_flags & Py_TPFLAGS_INLINE_VALUES)) {
      values = _PyObject_InlineValues(o);
      if (!values->valid) values = NULL;
    }
#endif
    PyDictKeysObject* keys = (t->tp_flags & Py_TPFLAGS_HEAPTYPE) ? ((PyHeapTypeObject*)t)->ht_cached_keys : NULL;
    if (values != NULL && keys != NULL && DK_IS_UNICODE(keys)) {
      PyDictUnicodeEntry* e = DK_UNICODE_ENTRIES(keys);
      for (Py_ssize_t i = 0; i < keys->dk_nentries; ++i)
        if (values->values[i] != NULL) cb(ctx, values->values[i], LSP_EDGE_ATTR, (uintptr_t)e[i].me_key);
    }
  } else
#endif
  if (t->tp_dictoffset > 0) {
    dict = *(PyObject**)((char*)o + t->tp_dictoffset);
  } else if (t->tp_dictoffset < 0) {
    Py_ssize_t tsize = Py_SIZE(o);
    if (tsize < 0) tsize = -tsize;
    Py_ssize_t off = t->tp_dictoffset + (Py_ssize_t)_PyObject_VAR_SIZE(t, tsize);
    if (off > 0) dict = *(PyObject**)((char*)o + off);
  }
  if (dict != NULL) cb(ctx, dict, LSP_EDGE_NSDICT, LSP_EDGE_ATTR);
}

static void LSP_FN(_edges)(const lsp_pyapi* api, void* vobj, int ns_kind, lsp_edge_cb cb, void* ctx) {
  PyObject* o = (PyObject*)vobj;
  PyTypeObject* t = Py_TYPE(o);
  lsp_visit_arg arg = {cb, ctx, LSP_EDGE_GENERIC};
  if (PyDict_Check(o)) {
    Py_ssize_t pos = 0;
    void *k, *v;
    while (api->dict_next(o, &pos, &k, &v)) {
      cb(ctx, v, ns_kind ? ns_kind : LSP_EDGE_DICT_VALUE, (uintptr_t)k);
      cb(ctx, k, LSP_EDGE_DICT_KEY, 0);
    }
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE)) return; /* a dict subclass has attributes too */
  } else if (PyList_Check(o) || PyTuple_Check(o)) {
    Py_ssize_t n = Py_SIZE(o);
    PyObject** items = PyList_Check(o) ? ((PyListObject*)o)->ob_item : ((PyTupleObject*)o)->ob_item;
    for (Py_ssize_t i = 0; items != NULL && i < n; ++i)
      if (items[i] != NULL) cb(ctx, items[i], LSP_EDGE_INDEX, (uintptr_t)i);
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE)) return;
  } else if (lsp_is_module(api, t)) {
    /* md_dict is the first field after the header in every version */
    PyObject* d = *(PyObject**)((char*)o + sizeof(PyObject));
    if (d != NULL) cb(ctx, d, LSP_EDGE_NSDICT, LSP_EDGE_GLOBAL);
  } else if (PyType_Check(o)) {
    PyTypeObject* tt = (PyTypeObject*)o;
    if (tt->tp_dict != NULL) cb(ctx, tt->tp_dict, LSP_EDGE_NSDICT, LSP_EDGE_ATTR);
  } else if ((void*)t == api->function_type) {
    lsp_function_edges((PyFunctionObject*)o, cb, ctx);
  } else if ((void*)t == api->cell_type) {
    PyObject* c = ((PyCellObject*)o)->ob_ref;
    if (c != NULL) cb(ctx, c, LSP_EDGE_CELL, 0);
    return;
  } else if ((void*)t == api->method_type) {
    PyMethodObject* m = (PyMethodObject*)o;
    if (m->im_self != NULL) cb(ctx, m->im_self, LSP_EDGE_SELF, 0);
    if (m->im_func != NULL) cb(ctx, m->im_func, LSP_EDGE_FUNC, 0);
  } else if ((void*)t == api->frame_type) {
#if LSP_PY_TAG >= 311
    _PyInterpreterFrame* f = ((PyFrameObject*)o)->f_frame;
    PyCodeObject* co = f != NULL ? lsp_iframe_code(api, f) : NULL;
    if (co != NULL) lsp_locals(co, f->localsplus, cb, ctx);
#else
    PyFrameObject* f = (PyFrameObject*)o;
    if (f->f_code != NULL) lsp_locals(f->f_code, f->f_localsplus, cb, ctx);
#endif
  }
#if LSP_PY_TAG >= 311
  else if ((void*)t == api->gen_type || (void*)t == api->coro_type) {
    PyGenObject* g = (PyGenObject*)o;
    if (g->gi_frame_state < FRAME_CLEARED) {
      _PyInterpreterFrame* f = (_PyInterpreterFrame*)g->gi_iframe;
      PyCodeObject* co = lsp_iframe_code(api, f);
      if (co != NULL) lsp_locals(co, f->localsplus, cb, ctx);
    }
  }
#endif
  else if ((void*)t == api->set_type || (void*)t == api->frozenset_type) {
    arg.kind = LSP_EDGE_MEMBER;
  }
  if (t->tp_flags & Py_TPFLAGS_HEAPTYPE) lsp_instance_edges(o, cb, ctx);
  if (lsp_is_gc(o)) t->tp_traverse(o, lsp_visit, &arg);
}

static void LSP_FN(_thread_frames)(const lsp_pyapi* api, void* vtstate, lsp_frame_cb frame_cb, lsp_edge_cb cb,
                                   void* ctx) {
  PyThreadState* tstate = (PyThreadState*)vtstate;
  if (tstate == NULL) return;
#if LSP_PY_TAG <= 310
  int guard = 0;
  for (PyFrameObject* f = tstate->frame; f != NULL && guard < 100000; f = f->f_back, ++guard) {
    if (f->f_code == NULL) continue;
    frame_cb(ctx, f->f_code, api->frame_line(f));
    lsp_locals(f->f_code, f->f_localsplus, cb, ctx);
  }
#else
#if LSP_PY_TAG >= 313
  _PyInterpreterFrame* f = tstate->current_frame;
#else
  _PyInterpreterFrame* f = tstate->cframe == NULL ? NULL : tstate->cframe->current_frame;
#endif
  for (int guard = 0; f != NULL && guard < 100000; f = f->previous, ++guard) {
#if LSP_PY_TAG >= 312
    if (f->owner == FRAME_OWNED_BY_CSTACK) continue;
#endif
    PyCodeObject* co = lsp_iframe_code(api, f);
    if (co == NULL) continue;
    _Py_CODEUNIT* first = _PyCode_CODE(co);
#if LSP_PY_TAG >= 313
    _Py_CODEUNIT* ip = f->instr_ptr;
#else
    _Py_CODEUNIT* ip = f->prev_instr;
#endif
    if (f->owner != FRAME_OWNED_BY_GENERATOR && ip < first + co->_co_firsttraceable) continue; /* incomplete */
    int off = ip < first ? 0 : (int)((ip - first) * (int)sizeof(_Py_CODEUNIT));
    frame_cb(ctx, co, api->code_addr2line(co, off));
    lsp_locals(co, f->localsplus, cb, ctx);
  }
#endif
}

static unsigned long LSP_FN(_thread_ident)(void* tstate) { return ((PyThreadState*)tstate)->thread_id; }
static void* LSP_FN(_thread_dict)(void* tstate) { return ((PyThreadState*)tstate)->dict; }

static size_t LSP_FN(_preheader)(void* vobj) {
  PyTypeObject* t = Py_TYPE((PyObject*)vobj);
#if LSP_PY_TAG >= 311
  return _PyType_PreHeaderSize(t);
#else
  return (t->tp_flags & Py_TPFLAGS_HAVE_GC) ? sizeof(PyGC_Head) : 0;
#endif
}

static void* LSP_FN(_owned_buffer)(const lsp_pyapi* api, void* vobj) {
  PyObject* o = (PyObject*)vobj;
  PyTypeObject* t = Py_TYPE(o);
  if (PyList_Check(o)) return ((PyListObject*)o)->ob_item;
  if (PyDict_Check(o)) {
    PyDictObject* d = (PyDictObject*)o;
    return d->ma_values == NULL ? (void*)d->ma_keys : (void*)d->ma_values; /* split: the keys are shared */
  }
  if ((void*)t == api->bytearray_type) return ((PyByteArrayObject*)o)->ob_bytes;
  if ((void*)t == api->set_type || (void*)t == api->frozenset_type) {
    PySetObject* s = (PySetObject*)o;
    return s->table != s->smalltable ? (void*)s->table : NULL;
  }
  return NULL;
}

static void* LSP_FN(_qualname)(const lsp_pyapi* api, void* vobj) {
  PyObject* o = (PyObject*)vobj;
  if ((void*)Py_TYPE(o) == api->function_type) return ((PyFunctionObject*)o)->func_qualname;
  if (PyType_Check(o) && (((PyTypeObject*)o)->tp_flags & Py_TPFLAGS_HEAPTYPE)) return ((PyHeapTypeObject*)o)->ht_qualname;
  return NULL;
}

static void* LSP_FN(_code_name)(void* vcode, void** filename) {
  PyCodeObject* co = (PyCodeObject*)vcode;
  *filename = co->co_filename;
#if LSP_PY_TAG >= 311
  return co->co_qualname;
#else
  return co->co_name;
#endif
}

static void* LSP_FN(_frame_code)(void* vframe) {
#if LSP_PY_TAG >= 311
  _PyInterpreterFrame* f = ((PyFrameObject*)vframe)->f_frame;
  if (f == NULL) return NULL;
#if LSP_PY_TAG >= 313
  return f->f_executable;
#else
  return f->f_code;
#endif
#else
  return ((PyFrameObject*)vframe)->f_code;
#endif
}

static int LSP_FN(_long_value)(void* vobj, long long* out) {
  PyObject* o = (PyObject*)vobj;
  unsigned long f = Py_TYPE(o)->tp_flags;
  if (!(f & Py_TPFLAGS_LONG_SUBCLASS) || (f & Py_TPFLAGS_HEAPTYPE)) return 0;
#if LSP_PY_TAG >= 312
  if (!_PyLong_IsCompact((PyLongObject*)o)) return 0;
  *out = (long long)_PyLong_CompactValue((PyLongObject*)o);
  return 1;
#else
  Py_ssize_t n = Py_SIZE(o);
  if (n < -1 || n > 1) return 0;
  *out = n == 0 ? 0 : (long long)((PyLongObject*)o)->ob_digit[0] * n;
  return 1;
#endif
}

static int LSP_FN(_str)(void* vobj, lsp_pystr* out) { return lsp_str((PyObject*)vobj, out); }
static const char* LSP_FN(_type_name)(void* vobj) { return Py_TYPE((PyObject*)vobj)->tp_name; }
static void* LSP_FN(_type_of)(void* vobj) { return Py_TYPE((PyObject*)vobj); }
static void* LSP_FN(_weakref_target)(void* ref) { return ((PyWeakReference*)ref)->wr_object; }

const lsp_objects LSP_FN(_objects) = {
    1,
    LSP_FN(_edges),
    LSP_FN(_thread_frames),
    LSP_FN(_thread_ident),
    LSP_FN(_thread_dict),
    LSP_FN(_preheader),
    LSP_FN(_owned_buffer),
    LSP_FN(_qualname),
    LSP_FN(_code_name),
    LSP_FN(_frame_code),
    LSP_FN(_long_value),
    LSP_FN(_str),
    LSP_FN(_type_name),
    LSP_FN(_type_of),
    LSP_FN(_weakref_target),
};
#else
const lsp_objects LSP_FN(_objects) = {0};
#endif

#define LSP_TABLE_TYPE lsp_objects
#define LSP_TABLE(tag) lsp_py##tag##_objects
#define LSP_TABLE_FN lsp_objects_for_minor
#include "python/dispatcher.inc"

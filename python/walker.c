/* CPython frame walker for one version family; see walker.h. Compiled five times with
 * LSP_PY_TAG in {39,310,311,312,313}. Layout facts (shared/FIELD-NOTES.md section 3):
 *   3.9, 3.10: tstate->frame, f_back, f_lasti (bytes in 3.9, code units in 3.10)
 *   3.11, 3.12: tstate->cframe->current_frame, ->previous over _PyInterpreterFrame; skip
 *               incomplete frames; 3.12 also skips shim frames owned by the C stack
 *   3.13: tstate->current_frame, f_executable (must be a code object), instr_ptr */
#include "python/walker.h"

#include "python/per_version.h"
#include "python/versions.h"

#if LSP_HAVE_HEADERS
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#if LSP_PY_TAG >= 311
#include "internal/pycore_frame.h"
#include "internal/pycore_code.h"
#endif

static int LSP_FN(_code_info)(const void* vcode, lsp_code_info* out) {
  PyCodeObject* co = (PyCodeObject*)vcode;
  lsp_str(co->co_filename, &out->filename);
#if LSP_PY_TAG >= 311
  lsp_str(co->co_qualname, &out->qualname);
#else
  lsp_str(co->co_name, &out->qualname);
#endif
  out->firstlineno = co->co_firstlineno;
  out->table_kind = LSP_PY_LINES_OF_TAG; /* python/versions.h */
#if LSP_PY_TAG == 39
  PyObject* t = co->co_lnotab;
#else
  PyObject* t = co->co_linetable;
#endif
  if (t != NULL && PyBytes_Check(t)) {
    out->table = PyBytes_AS_STRING(t);
    out->table_len = (size_t)PyBytes_GET_SIZE(t);
  } else {
    out->table = NULL;
    out->table_len = 0;
  }
  return 1;
}

static int LSP_FN(_walk)(const void* vtstate, lsp_pyframe* out, int max, const void* code_type) {
  const PyThreadState* tstate = (const PyThreadState*)vtstate;
  int n = 0;
  if (tstate == NULL) return 0;
#if LSP_PY_TAG <= 310
  (void)code_type;
  for (PyFrameObject* f = tstate->frame; f != NULL && n < max; f = f->f_back) {
    out[n].code = f->f_code;
    out[n].instr = f->f_lasti < 0 ? 0u : (uint32_t)f->f_lasti;
    out[n].eval_end = 1;
    ++n;
  }
#else
#if LSP_PY_TAG == 313
  _PyInterpreterFrame* f = tstate->current_frame;
#else
  _PyInterpreterFrame* f = tstate->cframe == NULL ? NULL : tstate->cframe->current_frame;
#endif
  for (; f != NULL && n < max; f = f->previous) {
#if LSP_PY_TAG >= 312
    if (f->owner == FRAME_OWNED_BY_CSTACK) {
      /* shim pushed by a C->Python call: the frame below it ends an eval invocation */
      if (n > 0) out[n - 1].eval_end = 1;
      continue;
    }
#endif
#if LSP_PY_TAG == 313
    PyObject* exe = f->f_executable;
    if (exe == NULL || (const void*)Py_TYPE(exe) != code_type) continue;
    PyCodeObject* co = (PyCodeObject*)exe;
    _Py_CODEUNIT* ip = f->instr_ptr;
#else
    PyCodeObject* co = f->f_code;
    _Py_CODEUNIT* ip = f->prev_instr;
#endif
    if (co == NULL) continue;
    _Py_CODEUNIT* first = _PyCode_CODE(co);
    if (f->owner != FRAME_OWNED_BY_GENERATOR && ip < first + co->_co_firsttraceable) continue; /* incomplete */
    out[n].code = co;
    out[n].instr = ip < first ? 0u : (uint32_t)(ip - first);
#if LSP_PY_TAG == 311
    out[n].eval_end = f->is_entry ? 1u : 0u;
#else
    out[n].eval_end = 0;
#endif
    ++n;
  }
#if LSP_PY_TAG >= 312
  if (n > 0) out[n - 1].eval_end = 1;
#endif
#endif
  return n;
}

const lsp_walker LSP_FN(_walker) = {1, LSP_FN(_walk), LSP_FN(_code_info)};
#else
const lsp_walker LSP_FN(_walker) = {0, 0, 0};
#endif

#define LSP_TABLE_TYPE lsp_walker
#define LSP_TABLE(tag) lsp_py##tag##_walker
#define LSP_TABLE_FN lsp_walker_for_minor
#include "python/dispatcher.inc"

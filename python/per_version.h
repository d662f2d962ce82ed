/* What every per-CPython-version object file (walker.c, layout.c, objects.c, gcstate.c, each
 * compiled once per version with LSP_PY_TAG=39..313, cmake/python_objects.cmake) shares:
 *   LSP_FN(_x)  the version's name for x: lsp_py<tag>_x
 *   lsp_str()   a str's characters (PEP 393), without the Python API
 * Each file's dispatcher (the table of the running version) comes from python/dispatcher.inc. */
#ifndef LEAKSCOPE_PYTHON_PER_VERSION_H
#define LEAKSCOPE_PYTHON_PER_VERSION_H
#include "python/walker.h"

#define LSP_CAT2(a, b) a##b
#define LSP_CAT(a, b) LSP_CAT2(a, b)
#define LSP_FN(name) LSP_CAT(LSP_CAT(lsp_py, LSP_PY_TAG), name)

#if LSP_HAVE_HEADERS
#ifndef PY_SSIZE_T_CLEAN
#define PY_SSIZE_T_CLEAN
#endif
#include <Python.h>
/* A str's characters; 0 (and an empty out) when s is not a ready str. */
static inline int lsp_str(PyObject* s, lsp_pystr* out) {
  out->kind = 0;
  out->data = NULL;
  out->length = 0;
  if (s == NULL || !PyUnicode_Check(s)) return 0;
#if LSP_PY_TAG < 312
  if (!PyUnicode_IS_READY(s)) return 0;
#endif
  out->kind = (int)PyUnicode_KIND(s);
  out->data = PyUnicode_DATA(s);
  out->length = (size_t)PyUnicode_GET_LENGTH(s);
  return 1;
}
#endif
#endif

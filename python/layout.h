/* What a reachability scan needs to know about one CPython version's objects and pymalloc
 * (docs/findleaks.md), one object file per version: python/layout.c compiled with
 * LSP_PY_TAG=39..313 against that version's headers, so every offset, flag and check is the
 * version's own (offsetof, _PyType_PreHeaderSize, _Py_IsImmortal), never a copied constant.
 * Host side only (the CLI reads a copy of the target's memory with it). */
#ifndef LEAKSCOPE_PYTHON_LAYOUT_H
#define LEAKSCOPE_PYTHON_LAYOUT_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int available; /* compiled against real headers */
  int minor;
  /* PyObject, PyVarObject, PyTypeObject field offsets */
  size_t ob_refcnt, ob_type, ob_size, tp_name, tp_basicsize, tp_itemsize, tp_flags, type_object_size;
  unsigned long flag_have_gc, flag_type_subclass, flag_unicode_subclass;
  /* Bytes before the object in its block for a type with these tp_flags (the collector's
   * PyGC_Head, and from 3.11 the managed dict/weakref slots). */
  size_t (*preheader_size)(unsigned long tp_flags);
  /* The version's own _Py_IsImmortal for an object with this refcount (0 before 3.12). */
  int (*is_immortal)(int64_t refcnt);
  /* pymalloc: arena and pool sizes, block alignment, the pool header and its fields */
  size_t arena_size, pool_size, alignment, pool_overhead, small_threshold;
  size_t pool_count, pool_freeblock, pool_szidx, pool_nextoffset, pool_maxnextoffset;
} lsp_py_layout;

/* The layout of 3.`minor` (9..13), or NULL when leakscope was built without its headers. */
const lsp_py_layout* lsp_py_layout_for_minor(int minor);

#ifdef __cplusplus
}
#endif
#endif

/* One CPython version's object and pymalloc layout; see layout.h. Compiled five times with
 * LSP_PY_TAG in {39,310,311,312,313}. pymalloc's pool header and sizes are private to
 * Objects/obmalloc.c before 3.12 (pycore_obmalloc.h from 3.12): for 3.9-3.11 they are
 * restated here from that file (3.9: 256 KiB arenas, 4 KiB pools; 3.10+ on 64-bit: 1 MiB
 * arenas, 16 KiB pools; ALIGNMENT 16; blocks up to 512 bytes). A scan validates every pool
 * header it reads and falls back to conservative roots when one does not fit. */
#include "python/layout.h"

#include "python/per_version.h"

#if LSP_HAVE_HEADERS
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include "internal/pycore_gc.h"
#if LSP_PY_TAG >= 311
#include "internal/pycore_object.h"
#endif
#if LSP_PY_TAG >= 312
#include "internal/pycore_obmalloc.h"
#endif

#if LSP_PY_TAG < 312
struct lsp_pool_header { /* Objects/obmalloc.c, 3.9-3.11 */
  union {
    void* _padding;
    unsigned int count;
  } ref;
  void* freeblock;
  struct lsp_pool_header* nextpool;
  struct lsp_pool_header* prevpool;
  unsigned int arenaindex, szidx, nextoffset, maxnextoffset;
};
#if LSP_PY_TAG == 39
#define LSP_ARENA_SIZE (256u << 10)
#define LSP_POOL_SIZE (4u << 10)
#else
#define LSP_ARENA_SIZE (1u << 20)
#define LSP_POOL_SIZE (16u << 10)
#endif
#define LSP_ALIGNMENT 16u
#define LSP_SMALL_THRESHOLD 512u
#else
#define lsp_pool_header pool_header
#define LSP_ARENA_SIZE ARENA_SIZE
#define LSP_POOL_SIZE POOL_SIZE
#define LSP_ALIGNMENT ALIGNMENT
#define LSP_SMALL_THRESHOLD SMALL_REQUEST_THRESHOLD
#endif

static size_t LSP_FN(_preheader)(unsigned long tp_flags) {
#if LSP_PY_TAG >= 311
  PyTypeObject t;
  memset(&t, 0, sizeof t);
  t.tp_flags = tp_flags;
  return _PyType_PreHeaderSize(&t);
#else
  return (tp_flags & Py_TPFLAGS_HAVE_GC) ? sizeof(PyGC_Head) : 0;
#endif
}

static int LSP_FN(_immortal)(int64_t refcnt) {
#if LSP_PY_TAG >= 312
  PyObject o;
  memset(&o, 0, sizeof o);
  o.ob_refcnt = (Py_ssize_t)refcnt;
  return _Py_IsImmortal(&o) ? 1 : 0;
#else
  (void)refcnt;
  return 0;
#endif
}

const lsp_py_layout LSP_FN(_layout) = {
    1,
    LSP_PY_TAG < 100 ? LSP_PY_TAG % 10 : LSP_PY_TAG % 100,
    offsetof(PyObject, ob_refcnt),
    offsetof(PyObject, ob_type),
    offsetof(PyVarObject, ob_size),
    offsetof(PyTypeObject, tp_name),
    offsetof(PyTypeObject, tp_basicsize),
    offsetof(PyTypeObject, tp_itemsize),
    offsetof(PyTypeObject, tp_flags),
    sizeof(PyTypeObject),
    Py_TPFLAGS_HAVE_GC,
    Py_TPFLAGS_TYPE_SUBCLASS,
    Py_TPFLAGS_UNICODE_SUBCLASS,
    LSP_FN(_preheader),
    LSP_FN(_immortal),
    LSP_ARENA_SIZE,
    LSP_POOL_SIZE,
    LSP_ALIGNMENT,
    (sizeof(struct lsp_pool_header) + LSP_ALIGNMENT - 1) / LSP_ALIGNMENT * LSP_ALIGNMENT,
    LSP_SMALL_THRESHOLD,
    offsetof(struct lsp_pool_header, ref),
    offsetof(struct lsp_pool_header, freeblock),
    offsetof(struct lsp_pool_header, szidx),
    offsetof(struct lsp_pool_header, nextoffset),
    offsetof(struct lsp_pool_header, maxnextoffset),
};
#else
const lsp_py_layout LSP_FN(_layout) = {0};
#endif

#define LSP_TABLE_TYPE lsp_py_layout
#define LSP_TABLE(tag) lsp_py##tag##_layout
#define LSP_TABLE_FN lsp_py_layout_for_minor
#include "python/dispatcher.inc"

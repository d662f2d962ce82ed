/* One CPython version's view of its cyclic garbage collector; see gcstate.h. Compiled five
 * times with LSP_PY_TAG in {39,310,311,312,313}. Layout facts: 3.9 to 3.13 keep the collector's
 * state in `PyInterpreterState.gc` (struct _gc_runtime_state) with the same fields for what is
 * read here: enabled, debug, generations[3] {head, threshold, count}, permanent_generation,
 * generation_stats[3] {collections, collected, uncollectable}, collecting, garbage,
 * long_lived_total, long_lived_pending (3.13's incremental collector was reverted before 3.13.0). */
#include "python/gcstate.h"

#include "python/per_version.h"

#if LSP_HAVE_HEADERS
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "internal/pycore_gc.h"
#include "internal/pycore_interp.h"

/* One aligned load the compiler may not split, merge or hoist (the writer thread reads what
 * the GIL holder writes: a racy but benign read of a counter). */
#define LSP_LOAD(lv) (*(const volatile __typeof__(lv)*)&(lv))

static int LSP_FN(_read)(const void* vinterp, lsp_gcstate* out) {
  const struct _gc_runtime_state* gc = &((const PyInterpreterState*)vinterp)->gc;
  out->enabled = LSP_LOAD(gc->enabled);
  out->debug = LSP_LOAD(gc->debug);
  out->collecting = LSP_LOAD(gc->collecting);
  for (int i = 0; i < 3; ++i) {
    out->count[i] = LSP_LOAD(gc->generations[i].count);
    out->threshold[i] = LSP_LOAD(gc->generations[i].threshold);
    out->collections[i] = LSP_LOAD(gc->generation_stats[i].collections);
    out->collected[i] = LSP_LOAD(gc->generation_stats[i].collected);
    out->uncollectable[i] = LSP_LOAD(gc->generation_stats[i].uncollectable);
  }
  /* gc.garbage is made when the interpreter starts and dropped when it is finalized; the agent
   * reads it only while its allocator wrappers are installed (tracking stops at atexit). */
  PyObject* garbage = LSP_LOAD(gc->garbage);
  out->garbage = garbage == NULL ? -1 : (int64_t)LSP_LOAD(((PyVarObject*)garbage)->ob_size);
  out->long_lived_total = LSP_LOAD(gc->long_lived_total);
  out->long_lived_pending = LSP_LOAD(gc->long_lived_pending);
  return 1;
}

/* Nodes of a circular gc list (GIL held), at most `max`; *cut set when it stopped there. */
static int64_t lsp_list_len(const PyGC_Head* head, size_t max, int* cut) {
  int64_t n = 0;
  const PyGC_Head* g = (const PyGC_Head*)(head->_gc_next & ~(uintptr_t)1);
  while (g != NULL && g != head) {
    if ((size_t)n >= max) {
      *cut = 1;
      break;
    }
    ++n;
    g = (const PyGC_Head*)(g->_gc_next & ~(uintptr_t)1);
  }
  if (g == NULL) *cut = 1; /* never in a well-formed list */
  return n;
}

static int LSP_FN(_census)(const void* vinterp, lsp_gc_census* out, size_t max) {
  const struct _gc_runtime_state* gc = &((const PyInterpreterState*)vinterp)->gc;
  int cut = 0;
  for (int i = 0; i < 3; ++i) out->generation[i] = 0;
  out->frozen = 0;
  /* A finalizer run by a collection may let another thread take the GIL mid-collection: the
   * objects are then on the collector's private lists, and the counts would mean nothing. */
  if (gc->collecting) {
    out->complete = 0;
    return 1;
  }
  for (int i = 0; i < 3; ++i) out->generation[i] = lsp_list_len(&gc->generations[i].head, max, &cut);
  out->frozen = lsp_list_len(&gc->permanent_generation.head, max, &cut);
  out->complete = !cut;
  return 1;
}

const lsp_gcview LSP_FN(_gcview) = {1, LSP_FN(_read), LSP_FN(_census)};
#else
const lsp_gcview LSP_FN(_gcview) = {0, 0, 0};
#endif

#define LSP_TABLE_TYPE lsp_gcview
#define LSP_TABLE(tag) lsp_py##tag##_gcview
#define LSP_TABLE_FN lsp_gcstate_for_minor
#include "python/dispatcher.inc"

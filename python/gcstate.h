/* Per-CPython-version view of the cyclic garbage collector's state, one object file per version
 * (python/gcstate.c compiled with LSP_PY_TAG=39..313 against that version's internal headers).
 * The collector's state is `interp->gc` (struct _gc_runtime_state, Include/internal/pycore_gc.h).
 *
 *  - read(): called by the agent's writer thread WITHOUT the GIL, once per snapshot. It reads
 *    word-sized fields only (flags, per-generation counters and statistics, the size of the
 *    gc.garbage list): racy but benign, each value is one aligned load and at worst a moment
 *    old or mid-collection. It never follows a list of objects (a concurrent collection or
 *    gc.unfreeze() could free its nodes), never allocates and never calls the interpreter.
 *  - census(): called with the GIL held (a concurrent collection is then impossible): walks
 *    the generation lists and the permanent generation (gc.freeze()), each bounded by `max`
 *    nodes, and counts their objects exactly. Read-only; no allocation. */
#ifndef LEAKSCOPE_PYTHON_GCSTATE_H
#define LEAKSCOPE_PYTHON_GCSTATE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int enabled;    /* gc.isenabled() */
  int debug;      /* gc.get_debug() flags (DEBUG_SAVEALL = 32) */
  int collecting; /* a collection is running right now */
  /* gc.get_count(): generation 0 = allocations minus deallocations of tracked objects since the
   * last collection; 1 and 2 = collections of the next younger generation since this one's. */
  int64_t count[3];
  int64_t threshold[3];     /* gc.get_threshold() */
  int64_t collections[3];   /* gc.get_stats()[i]["collections"] */
  int64_t collected[3];     /* gc.get_stats()[i]["collected"] */
  int64_t uncollectable[3]; /* gc.get_stats()[i]["uncollectable"] */
  int64_t garbage;          /* len(gc.garbage); -1 when there is no list (finalized) */
  int64_t long_lived_total;   /* objects that survived the last full collection */
  int64_t long_lived_pending; /* objects that survived younger collections since */
} lsp_gcstate;

/* Exact objects per generation and in the permanent generation, GIL held. */
typedef struct {
  int64_t generation[3]; /* len(gc.get_objects(i)) */
  int64_t frozen;        /* gc.get_freeze_count() */
  int complete;          /* 0: a walk stopped at its bound (counts are lower bounds) */
} lsp_gc_census;

typedef struct {
  int available; /* compiled against real headers */
  /* interp: a PyInterpreterState*. Returns 1 (always, given a non-NULL interp). */
  int (*read)(const void* interp, lsp_gcstate* out);
  /* GIL held. Each list walk stops after `max` nodes. Returns 1. */
  int (*census)(const void* interp, lsp_gc_census* out, size_t max);
} lsp_gcview;

/* Returns 3.`minor`'s collector view (9..13), or NULL when leakscope has none. */
const lsp_gcview* lsp_gcstate_for_minor(int minor);

#ifdef __cplusplus
}
#endif
#endif

/* Per-CPython-version frame walkers, one object file per version (python/walker.c compiled
 * with LSP_PY_TAG=39..313 against that version's internal headers). Called from the agent's
 * allocation hooks: they read interpreter structs only (no Python API, no allocation, no
 * line-number computation) and are safe to call for the current thread's own tstate whether
 * or not it holds the GIL (only that thread changes its frame chain). */
#ifndef LEAKSCOPE_PYTHON_WALKER_H
#define LEAKSCOPE_PYTHON_WALKER_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const void* code;  /* PyCodeObject* */
  uint32_t instr;    /* 3.9: f_lasti (bytes); 3.10: f_lasti (code units); 3.11+: code units */
  uint32_t eval_end; /* 1: outermost Python frame run by its _PyEval_EvalFrameDefault call */
} lsp_pyframe;

typedef struct {
  int kind; /* 1, 2 or 4 bytes per character (PEP 393), 0 = absent */
  const void* data;
  size_t length; /* characters */
} lsp_pystr;

typedef struct {
  lsp_pystr filename, qualname;
  int firstlineno;
  const char* table; /* line table bytes */
  size_t table_len;
  int table_kind;    /* capture::LineTableKind */
} lsp_code_info;

typedef struct {
  int available;                              /* compiled against real headers */
  int (*walk)(const void* tstate, lsp_pyframe* out, int max, const void* code_type);
  int (*code_info)(const void* code, lsp_code_info* out);
} lsp_walker;

/* Returns the walker for 3.`minor` (9..13), or NULL when leakscope has none. */
const lsp_walker* lsp_walker_for_minor(int minor);

#ifdef __cplusplus
}
#endif
#endif

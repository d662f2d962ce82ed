/* Per-CPython-version object introspection for the retention walk (docs/retention.md), one
 * object file per version: python/objects.c compiled with LSP_PY_TAG=39..313 against that
 * version's internal headers. Agent side, called with the GIL held: it reads objects through
 * the version's own structs and tp_traverse, never runs Python code, never allocates, and
 * never materialises an instance dict or a frame's locals. Interpreter functions and type
 * objects come in an lsp_pyapi the agent fills with dlsym (the agent links no libpython). */
#ifndef LEAKSCOPE_PYTHON_OBJECTS_H
#define LEAKSCOPE_PYTHON_OBJECTS_H
#include <stddef.h>
#include <stdint.h>

#include "python/walker.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int (*dict_next)(void* dict, ptrdiff_t* pos, void** key, void** value); /* PyDict_Next */
  int (*code_addr2line)(void* code, int byte_offset);                     /* PyCode_Addr2Line */
  int (*frame_line)(void* frame);                                         /* PyFrame_GetLineNumber */
  void *module_type, *function_type, *cell_type, *frame_type, *method_type, *bytearray_type, *set_type,
      *frozenset_type, *gen_type, *coro_type, *code_type;
} lsp_pyapi;

/* How an edge is named (docs/retention.md, "Path"). `label` is an index (INDEX) or a borrowed
 * PyObject* (the key or name: GLOBAL, ATTR, LOCAL, CLOSURE, DICT_VALUE); 0 otherwise. */
enum {
  LSP_EDGE_GENERIC = 0, /* only tp_traverse knows it */
  LSP_EDGE_INDEX,       /* [i] of a list or tuple */
  LSP_EDGE_DICT_VALUE,  /* [key] of a data dict */
  LSP_EDGE_DICT_KEY,    /* a dict's key */
  LSP_EDGE_MEMBER,      /* a member of a set */
  LSP_EDGE_GLOBAL,      /* a module's global NAME */
  LSP_EDGE_ATTR,        /* a class's or instance's attribute NAME */
  LSP_EDGE_NSDICT,      /* an object's namespace dict; label = the kind its values get */
  LSP_EDGE_CLOSURE,     /* a function's closure cell NAME */
  LSP_EDGE_CELL,        /* a cell's contents */
  LSP_EDGE_DEFAULTS,    /* a function's __defaults__ */
  LSP_EDGE_KWDEFAULTS,  /* a function's __kwdefaults__ */
  LSP_EDGE_LOCAL,       /* a frame's local NAME */
  LSP_EDGE_SELF,        /* a bound method's __self__ */
  LSP_EDGE_FUNC,        /* a bound method's __func__ */
  LSP_EDGE_KINDS
};
typedef void (*lsp_edge_cb)(void* ctx, void* target, int kind, uintptr_t label);
/* A thread's frame: code object, current line (or -1). Its locals follow as LOCAL edges. */
typedef void (*lsp_frame_cb)(void* ctx, void* code, int line);

typedef struct {
  int available; /* compiled against real headers */
  /* Every edge of `obj`, named ones first, then the rest through tp_traverse (an edge may be
   * reported twice: the caller keeps the first). `ns_kind` != 0: obj is a namespace dict and
   * its values are named with that kind (GLOBAL, ATTR). */
  void (*edges)(const lsp_pyapi* api, void* obj, int ns_kind, lsp_edge_cb cb, void* ctx);
  /* The frames on a thread's stack, innermost first, each followed by its locals. */
  void (*thread_frames)(const lsp_pyapi* api, void* tstate, lsp_frame_cb frame, lsp_edge_cb local, void* ctx);
  unsigned long (*thread_ident)(void* tstate); /* tstate->thread_id */
  void* (*thread_dict)(void* tstate);          /* tstate->dict, or NULL */
  size_t (*preheader)(void* obj);              /* bytes before obj in its block */
  void* (*owned_buffer)(const lsp_pyapi* api, void* obj);           /* list items, dict keys, set table, bytearray bytes */
  void* (*qualname)(const lsp_pyapi* api, void* obj);               /* a function's or heap type's __qualname__ (borrowed), or NULL */
  void* (*code_name)(void* code, void** filename); /* code's qualified name and file (borrowed) */
  void* (*frame_code)(void* frame);            /* a frame object's code */
  int (*long_value)(void* obj, long long* out); /* a small int's value (1 on success) */
  int (*str)(void* obj, lsp_pystr* out);        /* a str's characters (1 if obj is a ready str) */
  const char* (*type_name)(void* obj);          /* Py_TYPE(obj)->tp_name */
  void* (*type_of)(void* obj);                  /* Py_TYPE(obj) */
  void* (*weakref_target)(void* ref);           /* a weakref's wr_object (Py_None when dead) */
} lsp_objects;

/* Returns 3.`minor`'s introspection (9..13), or NULL when leakscope has none. */
const lsp_objects* lsp_objects_for_minor(int minor);

#ifdef __cplusplus
}
#endif
#endif

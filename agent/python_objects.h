// The interpreter functions and objects the GIL-holding inspections use (the retention walk,
// the asyncio task census), found once with dlsym (the agent links no libpython), and the
// version's object introspection (python/objects.h).
#pragma once
#include "python/objects.h"

namespace leakscope::agent {

struct PyObjectsApi {
  lsp_pyapi py{};
  const lsp_objects* objs = nullptr;
  void* (*modules)() = nullptr;             // PyImport_GetModuleDict (borrowed)
  void* (*interp_main)() = nullptr;         // PyInterpreterState_Main
  void* (*thread_head)(void*) = nullptr;    // PyInterpreterState_ThreadHead
  void* (*thread_next)(void*) = nullptr;    // PyThreadState_Next
  void* (*getattr)(void*, const char*) = nullptr;  // PyObject_GetAttrString (new reference or null)
  void (*err_fetch)(void**, void**, void**) = nullptr;
  void (*err_restore)(void*, void*, void*) = nullptr;
  void (*err_clear)() = nullptr;
  void (*decref)(void*) = nullptr;          // Py_DecRef
  void* none = nullptr;                     // &_Py_NoneStruct
  void* (*save_thread)() = nullptr;         // PyEval_SaveThread: releases the GIL
  void (*restore_thread)(void*) = nullptr;  // PyEval_RestoreThread
};

// The API for the running interpreter, or nullptr (no Python, or a version without objects.c).
// Call with the GIL held.
const PyObjectsApi* py_objects_api();

// Reads attribute `name` of obj through the interpreter (for C getters such as a task's
// `_state`); nullptr when absent. The caller holds the GIL and decrefs a non-null result;
// any exception raised is cleared.
void* py_getattr(const PyObjectsApi* a, void* obj, const char* name);

}  // namespace leakscope::agent

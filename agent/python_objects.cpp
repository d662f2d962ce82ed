// See python_objects.h.
#include "agent/python_objects.h"

#include <dlfcn.h>

#include "agent/agent.h"

namespace leakscope::agent {
namespace {

template <typename T>
bool sym(T& out, const char* name) {
  out = reinterpret_cast<T>(g_real.dlsym(RTLD_DEFAULT, name));
  return out != nullptr;
}

bool load(PyObjectsApi& a) {
  lsp_pyapi& p = a.py;
  a.objs = lsp_objects_for_minor(g_py.minor);
  return a.objs && sym(p.dict_next, "PyDict_Next") && sym(p.code_addr2line, "PyCode_Addr2Line") &&
         sym(p.frame_line, "PyFrame_GetLineNumber") && sym(p.module_type, "PyModule_Type") &&
         sym(p.function_type, "PyFunction_Type") && sym(p.cell_type, "PyCell_Type") &&
         sym(p.frame_type, "PyFrame_Type") && sym(p.method_type, "PyMethod_Type") &&
         sym(p.bytearray_type, "PyByteArray_Type") && sym(p.set_type, "PySet_Type") &&
         sym(p.frozenset_type, "PyFrozenSet_Type") && sym(p.gen_type, "PyGen_Type") &&
         sym(p.coro_type, "PyCoro_Type") && sym(p.code_type, "PyCode_Type") &&
         sym(a.modules, "PyImport_GetModuleDict") && sym(a.interp_main, "PyInterpreterState_Main") &&
         sym(a.thread_head, "PyInterpreterState_ThreadHead") && sym(a.thread_next, "PyThreadState_Next") &&
         sym(a.getattr, "PyObject_GetAttrString") && sym(a.err_fetch, "PyErr_Fetch") &&
         sym(a.err_restore, "PyErr_Restore") && sym(a.err_clear, "PyErr_Clear") && sym(a.decref, "Py_DecRef") &&
         sym(a.none, "_Py_NoneStruct") && sym(a.save_thread, "PyEval_SaveThread") &&
         sym(a.restore_thread, "PyEval_RestoreThread");
}

}  // namespace

const PyObjectsApi* py_objects_api() {
  // Loaded under the GIL, so two callers never race; a failure is remembered.
  static PyObjectsApi api;
  static int state = 0;  // 0 not tried, 1 ready, -1 unavailable
  if (state == 0) state = load(api) ? 1 : -1;
  return state == 1 ? &api : nullptr;
}

void* py_getattr(const PyObjectsApi* a, void* obj, const char* name) {
  void* r = a->getattr(obj, name);
  if (!r) a->err_clear();
  return r;
}

}  // namespace leakscope::agent

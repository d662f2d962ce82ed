// See python_objects.h.
#include "agent/python_objects.h"

#include <dlfcn.h>

#include "agent/agent.h"

namespace leakscope::agent {
namespace {


bool load(PyObjectsApi& a) {
  lsp_pyapi& p = a.py;
  a.objs = lsp_objects_for_minor(g_py.minor);
  return a.objs && real_sym(p.dict_next, "PyDict_Next") && real_sym(p.code_addr2line, "PyCode_Addr2Line") &&
         real_sym(p.frame_line, "PyFrame_GetLineNumber") && real_sym(p.module_type, "PyModule_Type") &&
         real_sym(p.function_type, "PyFunction_Type") && real_sym(p.cell_type, "PyCell_Type") &&
         real_sym(p.frame_type, "PyFrame_Type") && real_sym(p.method_type, "PyMethod_Type") &&
         real_sym(p.bytearray_type, "PyByteArray_Type") && real_sym(p.set_type, "PySet_Type") &&
         real_sym(p.frozenset_type, "PyFrozenSet_Type") && real_sym(p.gen_type, "PyGen_Type") &&
         real_sym(p.coro_type, "PyCoro_Type") && real_sym(p.code_type, "PyCode_Type") &&
         real_sym(a.modules, "PyImport_GetModuleDict") &&
         real_sym(a.interp_main, "PyInterpreterState_Main") &&
         real_sym(a.thread_head, "PyInterpreterState_ThreadHead") &&
         real_sym(a.thread_next, "PyThreadState_Next") && real_sym(a.getattr, "PyObject_GetAttrString") &&
         real_sym(a.err_fetch, "PyErr_Fetch") && real_sym(a.err_restore, "PyErr_Restore") &&
         real_sym(a.err_clear, "PyErr_Clear") && real_sym(a.decref, "Py_DecRef") &&
         real_sym(a.none, "_Py_NoneStruct") && real_sym(a.save_thread, "PyEval_SaveThread") &&
         real_sym(a.restore_thread, "PyEval_RestoreThread");
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

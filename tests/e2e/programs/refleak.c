/* e2e C extension for findleaks (tests/e2e/test_findleaks_python.py), compiled against each
 * interpreter's headers. refleak.build(n, leak) builds n sets of an int and a str
 * ("order-<i>") each, stores the set in nothing, and when `leak` is true forgets the
 * Py_DECREF that would free it: a leaked reference, referenced by nothing. (Sets, because
 * CPython has no free list for them: a list or dict may be a recycled object whose block was
 * allocated by another line, or before tracking began.) */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *build(PyObject *self, PyObject *args) {
    int n, leak;
    if (!PyArg_ParseTuple(args, "ip", &n, &leak)) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *item = PySet_New(NULL); /* REFLEAK-SET */
        if (!item) return NULL;
        PyObject *a = PyLong_FromLong(100000 + i), *b = PyUnicode_FromFormat("order-%d", i);
        if (!a || !b || PySet_Add(item, a) < 0 || PySet_Add(item, b) < 0) return NULL;
        Py_DECREF(a);
        Py_DECREF(b);
        if (!leak) Py_DECREF(item);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"build", build, METH_VARARGS, "build n sets; leak=True forgets their Py_DECREF"},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "refleak", NULL, -1, methods};
PyMODINIT_FUNC PyInit_refleak(void) { return PyModule_Create(&module); }

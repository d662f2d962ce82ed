/* e2e C extension, compiled by test_extension.py against each interpreter's headers.
 * leakext.pymem_leak(n, size) / leakext.malloc_leak(n, size) allocate n blocks of size bytes
 * with PyMem_Malloc / malloc and keep them in a static array (never freed). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEPT 200000
static void *kept_blocks[MAX_KEPT];
static int nkept;

static __attribute__((noinline)) PyObject *ext_pymem_leak(PyObject *self, PyObject *args) {
    int n, size;
    if (!PyArg_ParseTuple(args, "ii", &n, &size)) return NULL;
    for (int i = 0; i < n && nkept < MAX_KEPT; i++) {
        void *p = PyMem_Malloc((size_t)size); /* EXT-PYMEM */
        if (!p) return PyErr_NoMemory();
        memset(p, 7, (size_t)size);
        kept_blocks[nkept++] = p;
    }
    Py_RETURN_NONE;
}

static __attribute__((noinline)) PyObject *ext_malloc_leak(PyObject *self, PyObject *args) {
    int n, size;
    if (!PyArg_ParseTuple(args, "ii", &n, &size)) return NULL;
    for (int i = 0; i < n && nkept < MAX_KEPT; i++) {
        void *p = malloc((size_t)size); /* EXT-MALLOC */
        if (!p) return PyErr_NoMemory();
        memset(p, 9, (size_t)size);
        kept_blocks[nkept++] = p;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"pymem_leak", ext_pymem_leak, METH_VARARGS, "keep n PyMem_Malloc blocks"},
    {"malloc_leak", ext_malloc_leak, METH_VARARGS, "keep n malloc blocks"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "leakext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_leakext(void) { return PyModule_Create(&module); }

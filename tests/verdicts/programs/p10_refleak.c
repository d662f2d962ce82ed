/* p10 C extension: encode_row() returns a new bytes object with one reference too many
   (a stray Py_INCREF, the classic missing Py_DECREF). Every result is leaked when the
   caller drops it. Built by p10_cext_missing_decref.py (or the test) with
   gcc -shared -fPIC -O1 -g -I<python include> p10_refleak.c -o p10_refleak<EXT_SUFFIX> */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject* encode_row(PyObject* self, PyObject* args) {
    Py_ssize_t size;
    long long seed;
    if (!PyArg_ParseTuple(args, "nL", &size, &seed)) return NULL;
    PyObject* row = PyBytes_FromStringAndSize(NULL, size);  /* EXT-ALLOC-SITE */
    if (row == NULL) return NULL;
    char* p = PyBytes_AS_STRING(row);
    for (Py_ssize_t i = 0; i < size; ++i) p[i] = (char)((seed + i) & 0x7F);
    Py_INCREF(row); /* BUG: an extra reference that is never released */
    return row;
}

static PyMethodDef methods[] = {
    {"encode_row", encode_row, METH_VARARGS, "encode one row (leaks it: a stray Py_INCREF)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "p10_refleak", NULL, -1, methods};

PyMODINIT_FUNC PyInit_p10_refleak(void) { return PyModule_Create(&module); }

/* The CPython versions leakscope supports: the one list (CMakeLists.txt reads it too).
 * X(minor, tag): 3.minor, built as LSP_PY_TAG=tag against that version's headers. */
#ifndef LEAKSCOPE_PYTHON_VERSIONS_H
#define LEAKSCOPE_PYTHON_VERSIONS_H
#define LSP_PY_VERSIONS(X) X(9, 39) X(10, 310) X(11, 311) X(12, 312) X(13, 313)
#endif

/* The CPython versions leakscope supports: the one list (CMakeLists.txt reads it too).
 * X(minor, tag, lines): 3.minor, built as LSP_PY_TAG=tag against that version's headers, whose
 * code objects carry line tables of kind `lines` (capture/format.h LineTableKind: 9 co_lnotab,
 * 10 the 3.10 co_linetable, 11 the 3.11+ location table). The walker dispatch, the line-table
 * kind a capture records, the kinds the symbolizer reads and the supported-range message all
 * come from here. */
#ifndef LEAKSCOPE_PYTHON_VERSIONS_H
#define LEAKSCOPE_PYTHON_VERSIONS_H
#define LSP_PY_VERSIONS(X) X(9, 39, 9) X(10, 310, 10) X(11, 311, 11) X(12, 312, 11) X(13, 313, 11)

/* The line-table kind of the version being compiled (LSP_PY_TAG), 0 for none. */
#define LSP_PY_LINES_IF_TAG_(m, tag, lines) (LSP_PY_TAG == (tag) ? (lines) : 0) +
#define LSP_PY_LINES_OF_TAG (LSP_PY_VERSIONS(LSP_PY_LINES_IF_TAG_) 0)

/* C++: the table as data (oldest first), the supported range and the known line-table kinds. */
#ifdef __cplusplus
namespace leakscope::python_versions {
struct Version {
  int minor, tag, lines;
};
#define LSP_PY_VERSION_ROW_(m, tag, lines) Version{m, tag, lines},
inline constexpr Version kAll[] = {LSP_PY_VERSIONS(LSP_PY_VERSION_ROW_)};
#undef LSP_PY_VERSION_ROW_
inline constexpr int kOldestMinor = kAll[0].minor;
inline constexpr int kNewestMinor = kAll[sizeof kAll / sizeof kAll[0] - 1].minor;
constexpr bool oldest_first() {
  for (size_t i = 1; i < sizeof kAll / sizeof kAll[0]; ++i)
    if (kAll[i].minor <= kAll[i - 1].minor) return false;
  return true;
}
static_assert(oldest_first(), "python/versions.h: list the versions oldest first");
// Whether `lines` is the line-table kind of some supported version.
constexpr bool known_line_table(int lines) {
  for (const Version& v : kAll)
    if (v.lines == lines) return true;
  return false;
}
}  // namespace leakscope::python_versions
#endif
#endif

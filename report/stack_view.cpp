// Folding stacks for text reports: see stack_view.h.
#include "report/stack_view.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "report/sites.h"
#include "report/words.h"

namespace leakscope::report {

namespace {

enum class Where : uint8_t {
  kPythonFile,      // a Python frame's file
  kNativeModule,    // a native frame's module (executable or shared library) path
  kNativeFile,      // a native frame's source file (inlined code keeps its own)
  kNativeFunction,  // a native frame's function
  kPath,            // a Python frame's file or a native frame's module path
};
enum class Match : uint8_t {
  kExact,
  kPrefix,
  kSuffix,
  kContains,
  kBasePrefix,  // the last path component starts with the text
  kVersionDir,  // the text, then a version ("3.12", "3.13t"), then '/': PREFIX/lib/python3.12/
};
struct FrameRule {
  Where where;
  Match match;
  const char* text;
  FrameKind kind;
};

// The one table of which frame is whose. The first rule that matches wins; a frame no rule
// matches is the program's own code: a Python file outside the standard library and the
// package directories, or a native frame outside the interpreter and the system's library
// directories (the program's executable, its own libraries and extension modules).
constexpr FrameRule kFrameRules[] = {
    // Python's import system: frozen into the interpreter, or its sources when run with
    // -X frozen_modules=off (debug builds)
    {Where::kPythonFile, Match::kPrefix, "<frozen importlib.", FrameKind::kImport},
    {Where::kPythonFile, Match::kExact, "<frozen zipimport>", FrameKind::kImport},
    {Where::kPythonFile, Match::kSuffix, "/importlib/_bootstrap.py", FrameKind::kImport},
    {Where::kPythonFile, Match::kSuffix, "/importlib/_bootstrap_external.py", FrameKind::kImport},
    {Where::kPythonFile, Match::kSuffix, "/zipimport.py", FrameKind::kImport},
    // code the program gave the interpreter as text: python -c, stdin, exec() of a string
    {Where::kPythonFile, Match::kExact, "<string>", FrameKind::kOwn},
    {Where::kPythonFile, Match::kExact, "<stdin>", FrameKind::kOwn},
    // other pseudo-files (frozen standard modules such as <frozen runpy>), and no file at all
    {Where::kPythonFile, Match::kPrefix, "<", FrameKind::kLibrary},
    {Where::kPythonFile, Match::kExact, "", FrameKind::kLibrary},
    // installed packages and the standard library (its extension modules in lib-dynload too)
    {Where::kPath, Match::kContains, "/site-packages/", FrameKind::kLibrary},
    {Where::kPath, Match::kContains, "/dist-packages/", FrameKind::kLibrary},
    {Where::kPath, Match::kVersionDir, "/lib/python", FrameKind::kLibrary},
    {Where::kPath, Match::kVersionDir, "/lib64/python", FrameKind::kLibrary},
    // the interpreter itself: the python executable and libpython
    {Where::kNativeModule, Match::kBasePrefix, "python", FrameKind::kRuntime},
    {Where::kNativeModule, Match::kBasePrefix, "libpython", FrameKind::kRuntime},
    // system headers inlined into the program (the C++ standard library), and the C runtime's
    // entry point linked into every executable
    {Where::kNativeFile, Match::kPrefix, "/usr/include/", FrameKind::kLibrary},
    {Where::kNativeFile, Match::kPrefix, "/usr/local/include/", FrameKind::kLibrary},
    {Where::kNativeFunction, Match::kExact, "_start", FrameKind::kLibrary},
    // the system's libraries (libc, libstdc++, the dynamic loader...), and unknown modules
    {Where::kNativeModule, Match::kPrefix, "/lib/", FrameKind::kLibrary},
    {Where::kNativeModule, Match::kPrefix, "/lib64/", FrameKind::kLibrary},
    {Where::kNativeModule, Match::kPrefix, "/usr/lib/", FrameKind::kLibrary},
    {Where::kNativeModule, Match::kPrefix, "/usr/lib64/", FrameKind::kLibrary},
    {Where::kNativeModule, Match::kPrefix, "/usr/local/lib/", FrameKind::kLibrary},
    {Where::kNativeModule, Match::kExact, "", FrameKind::kLibrary},
};

// `text` followed by a version number ("3", "3.12", "3.13t") and '/', anywhere in `s`.
bool version_dir(std::string_view s, std::string_view text) {
  for (size_t at = s.find(text); at != std::string_view::npos; at = s.find(text, at + 1)) {
    size_t i = at + text.size(), digits = 0;
    while (i < s.size() && (isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) digits += s[i++] != '.';
    if (i < s.size() && s[i] == 't') ++i;
    if (digits && i < s.size() && s[i] == '/') return true;
  }
  return false;
}

bool matches(const FrameRule& r, std::string_view s) {
  std::string_view t = r.text;
  switch (r.match) {
    case Match::kExact: return s == t;
    case Match::kPrefix: return s.substr(0, t.size()) == t;
    case Match::kSuffix: return s.size() >= t.size() && s.substr(s.size() - t.size()) == t;
    case Match::kContains: return s.find(t) != std::string_view::npos;
    case Match::kBasePrefix: {
      size_t slash = s.rfind('/');
      std::string_view base = slash == std::string_view::npos ? s : s.substr(slash + 1);
      return base.substr(0, t.size()) == t;
    }
    case Match::kVersionDir: return version_dir(s, t);
  }
  return false;
}

// Marks the library frames the own frame at `own` called (toward the allocation): up to
// kCalleeContext, ending at the program's own code or the import machinery. For a Python frame
// the interpreter's frames in between are passed over; a native frame's are context.
void mark_callees(const std::vector<FrameOut>& fs, const std::vector<FrameKind>& kind, size_t own,
                  std::vector<char>& shown) {
  size_t got = 0;
  for (size_t j = own; j-- > 0 && got < kCalleeContext;) {
    if (kind[j] == FrameKind::kOwn || kind[j] == FrameKind::kImport) break;
    if (kind[j] == FrameKind::kRuntime && !fs[own].native) continue;
    shown[j] = 1;
    ++got;
  }
}

// Marks the Python library function that called the Python frame at `own` (threading, asyncio,
// a framework), passing over the interpreter's frames; native callers (the interpreter's
// start, libc's) are not context.
void mark_callers(const std::vector<FrameOut>& fs, const std::vector<FrameKind>& kind, size_t own,
                  std::vector<char>& shown) {
  if (fs[own].native) return;
  size_t got = 0;
  for (size_t j = own + 1; j < fs.size() && got < kCallerContext; ++j) {
    if (kind[j] == FrameKind::kRuntime) continue;
    if (kind[j] != FrameKind::kLibrary || fs[j].native) break;
    shown[j] = 1;
    ++got;
  }
}

std::vector<char> shown_frames(const std::vector<FrameOut>& fs, const std::vector<FrameKind>& kind) {
  std::vector<char> shown(fs.size(), 0);
  if (fs.empty()) return shown;
  shown[0] = 1;  // where the memory was allocated
  bool own_code = false;
  for (size_t i = 0; i < fs.size(); ++i) {
    if (kind[i] != FrameKind::kOwn) continue;
    own_code = true;
    shown[i] = 1;
    mark_callees(fs, kind, i, shown);
    mark_callers(fs, kind, i, shown);
  }
  if (!own_code)
    for (size_t i = 0; i < fs.size() && i < kNoOwnCodeFrames; ++i) shown[i] |= kind[i] != FrameKind::kImport;
  // too many: the innermost and the outermost stay, the middle folds
  std::vector<size_t> at;
  for (size_t i = 0; i < fs.size(); ++i)
    if (shown[i]) at.push_back(i);
  constexpr size_t kOuter = 4, kInner = kMaxShownFrames - kOuter - 1;
  if (at.size() > kMaxShownFrames)
    for (size_t k = kInner; k + kOuter < at.size(); ++k) shown[at[k]] = 0;
  return shown;
}

FoldCode fold_code(const std::vector<FrameKind>& kind, size_t first, size_t count) {
  size_t own = 0, import = 0, library = 0;
  for (size_t i = first; i < first + count; ++i) {
    own += kind[i] == FrameKind::kOwn;
    import += kind[i] == FrameKind::kImport;
    library += kind[i] == FrameKind::kLibrary;
  }
  if (own) return FoldCode::kAny;
  if (import) return library ? FoldCode::kImportAndLibrary : FoldCode::kImport;
  return library ? FoldCode::kLibrary : FoldCode::kRuntime;
}

}  // namespace

FrameKind frame_kind(const FrameOut& f) {
  for (const FrameRule& r : kFrameRules) {
    const std::string* text = nullptr;
    switch (r.where) {
      case Where::kPythonFile: text = f.native ? nullptr : &f.file; break;
      case Where::kNativeModule: text = f.native ? &f.module : nullptr; break;
      case Where::kNativeFile: text = f.native ? &f.file : nullptr; break;
      case Where::kNativeFunction: text = f.native ? &f.function : nullptr; break;
      case Where::kPath: text = f.native ? &f.module : &f.file; break;
    }
    if (text && matches(r, *text)) return r.kind;
  }
  return FrameKind::kOwn;
}

std::vector<StackRow> fold_stack(const std::vector<FrameOut>& frames) {
  std::vector<FrameKind> kind;
  kind.reserve(frames.size());
  for (const auto& f : frames) kind.push_back(frame_kind(f));
  std::vector<char> shown = shown_frames(frames, kind);
  std::vector<StackRow> rows;
  for (size_t i = 0; i < frames.size();) {
    size_t end = i + 1;
    if (!shown[i])
      while (end < frames.size() && !shown[end]) ++end;
    if (end - i < 2) {  // a frame, shown or alone: a fold line would take the same room
      rows.push_back(StackRow{i, 1, false, FoldCode::kLibrary});
    } else {
      rows.push_back(StackRow{i, end - i, true, fold_code(kind, i, end - i)});
    }
    i = end;
  }
  return rows;
}

bool stack_text(std::ostringstream& o, const std::vector<FrameOut>& frames, bool all_frames) {
  if (frames.empty()) {
    o << "      <no stack>\n";
    return false;
  }
  if (all_frames) {
    for (const auto& f : frames) frame_line(o, f);
    return false;
  }
  bool folded = false;
  for (const StackRow& row : fold_stack(frames)) {
    if (!row.folded) {
      frame_line(o, frames[row.first]);
      continue;
    }
    o << "      " << fold_text(row.count, row.code) << "\n";
    folded = true;
  }
  return folded;
}

}  // namespace leakscope::report

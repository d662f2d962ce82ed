// Unit tests for folding stacks in text reports (report/stack_view.h).
#include "report/stack_view.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace {

using leakscope::report::FoldCode;
using leakscope::report::FrameKind;
using leakscope::report::FrameOut;
using leakscope::report::StackRow;
using leakscope::report::fold_stack;
using leakscope::report::frame_kind;
using leakscope::report::stack_text;

const std::string kStd = "/root/.pyenv/versions/3.12.1/lib/python3.12/";
const std::string kLibpython = "/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0";

FrameOut py(const std::string& file, const std::string& function, int line = 1) {
  FrameOut f;
  f.file = file;
  f.function = function;
  f.line = line;
  return f;
}
FrameOut native(const std::string& module, const std::string& function, const std::string& file = "") {
  FrameOut f;
  f.native = true;
  f.module = module;
  f.function = function;
  f.file = file;
  f.address = 0x1000;
  return f;
}

// A row as text: "3" for a frame, "[5-9 import]" for a fold of frames 5..9.
std::string row_text(const StackRow& r) {
  if (!r.folded) return std::to_string(r.first);
  const char* code[] = {"import", "import+library", "runtime", "library", "any"};
  return "[" + std::to_string(r.first) + "-" + std::to_string(r.first + r.count - 1) + " " +
         code[static_cast<int>(r.code)] + "]";
}
std::string rows_text(const std::vector<FrameOut>& fs) {
  std::string s;
  for (const StackRow& r : fold_stack(fs)) s += (s.empty() ? "" : " ") + row_text(r);
  return s;
}

// The stack of a leak in a module's top-level code, imported by the program: email's parser
// allocates, called from registry.py, imported from app.py (as Python 3.12 records it).
std::vector<FrameOut> import_stack() {
  return {
      py(kStd + "email/feedparser.py", "FeedParser._new_message"),  // 0: allocation point
      py(kStd + "email/feedparser.py", "FeedParser._parsegen"),
      py(kStd + "email/feedparser.py", "FeedParser._call_parse"),
      py(kStd + "email/feedparser.py", "FeedParser.feed"),
      py(kStd + "email/parser.py", "Parser.parse"),
      py(kStd + "email/parser.py", "Parser.parsestr"),  // 5
      py(kStd + "email/__init__.py", "message_from_string"),
      py("/srv/app/registry.py", "_load"),     // 7
      py("/srv/app/registry.py", "<module>"),  // 8
      py("<frozen importlib._bootstrap>", "_call_with_frames_removed"),
      py("<frozen importlib._bootstrap_external>", "_LoaderBasics.exec_module"),
      py("<frozen importlib._bootstrap>", "_load_unlocked"),
      py("<frozen importlib._bootstrap>", "_find_and_load_unlocked"),
      py("<frozen importlib._bootstrap>", "_find_and_load"),  // 13
      py("/srv/app/app.py", "main"),      // 14
      py("/srv/app/app.py", "<module>"),  // 15
  };
}

TEST(FrameKind, PythonFiles) {
  EXPECT_EQ(frame_kind(py("<frozen importlib._bootstrap>", "_find_and_load")), FrameKind::kImport);
  EXPECT_EQ(frame_kind(py("<frozen importlib._bootstrap_external>", "exec_module")), FrameKind::kImport);
  EXPECT_EQ(frame_kind(py("<frozen zipimport>", "load_module")), FrameKind::kImport);
  EXPECT_EQ(frame_kind(py("/usr/lib/python3.11/importlib/_bootstrap.py", "_find_and_load")), FrameKind::kImport);
  EXPECT_EQ(frame_kind(py("/usr/lib/python3.11/importlib/_bootstrap_external.py", "exec_module")), FrameKind::kImport);
  // importlib.import_module is the library function the program called, not the machinery
  EXPECT_EQ(frame_kind(py("/usr/lib/python3.11/importlib/__init__.py", "import_module")), FrameKind::kLibrary);

  EXPECT_EQ(frame_kind(py("/usr/lib/python3.11/json/decoder.py", "raw_decode")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py(kStd + "threading.py", "Thread.run")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("/opt/py/lib/python3.13t/json/decoder.py", "raw_decode")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("/usr/lib64/python3.9/json/decoder.py", "raw_decode")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("/home/u/venv/lib/python3.12/site-packages/requests/api.py", "get")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("/usr/lib/python3/dist-packages/yaml/__init__.py", "load")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("/home/u/.local/lib/python3.11/site-packages/x.py", "f")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("<frozen runpy>", "_run_module_as_main")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(py("", "<code not in capture>")), FrameKind::kLibrary);

  EXPECT_EQ(frame_kind(py("/srv/app/app.py", "main")), FrameKind::kOwn);
  EXPECT_EQ(frame_kind(py("app.py", "main")), FrameKind::kOwn);
  EXPECT_EQ(frame_kind(py("<string>", "<module>")), FrameKind::kOwn);  // python -c
  EXPECT_EQ(frame_kind(py("<stdin>", "<module>")), FrameKind::kOwn);
  // "lib/python" without a version directory is a project's own layout
  EXPECT_EQ(frame_kind(py("/home/u/lib/python-tools/tool.py", "run")), FrameKind::kOwn);
  EXPECT_EQ(frame_kind(py("/home/u/lib/python3.x/tool.py", "run")), FrameKind::kOwn);
}

TEST(FrameKind, NativeModules) {
  EXPECT_EQ(frame_kind(native(kLibpython, "_PyEval_EvalFrameDefault")), FrameKind::kRuntime);
  EXPECT_EQ(frame_kind(native("/usr/bin/python3.11", "_PyEval_EvalFrameDefault")), FrameKind::kRuntime);
  EXPECT_EQ(frame_kind(native("/lib/x86_64-linux-gnu/libc.so.6", "malloc")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(native("/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "operator new")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(native("", "??")), FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(native(kStd + "lib-dynload/_json.cpython-312-x86_64-linux-gnu.so", "scanstring")),
            FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(native("/v/lib/python3.12/site-packages/numpy/core/_multiarray_umath.so", "f")),
            FrameKind::kLibrary);
  // the program's executable and its own extension modules...
  EXPECT_EQ(frame_kind(native("/srv/app/build/server", "main", "/srv/app/main.cpp")), FrameKind::kOwn);
  EXPECT_EQ(frame_kind(native("/srv/app/_ext.cpython-312-x86_64-linux-gnu.so", "ext_add")), FrameKind::kOwn);
  // ...but not the C++ library inlined into it, nor the C runtime's entry point
  EXPECT_EQ(frame_kind(native("/srv/app/build/server", "std::vector<int>::reserve", "/usr/include/c++/12/bits/vector.tcc")),
            FrameKind::kLibrary);
  EXPECT_EQ(frame_kind(native("/srv/app/build/server", "_start")), FrameKind::kLibrary);
}

TEST(FoldStack, ImportMachineryFoldsAndOwnCodeShows) {
  // 0 allocation point; 1-4 folded; 5-6 what registry.py called; 7-8 registry.py; the import
  // machinery folded; app.py
  EXPECT_EQ(rows_text(import_stack()), "0 [1-4 library] 5 6 7 8 [9-13 import] 14 15");
}

TEST(FoldStack, NativeImportRunTakesTheInterpreterFramesThatRunIt) {
  std::vector<FrameOut> fs = {
      native(kLibpython, "new_values"),  // 0
      native(kLibpython, "object_new"),
      native(kLibpython, "_PyObject_MakeTpCall"),
      py(kStd + "email/parser.py", "Parser.parsestr"),  // 3
      py("/srv/app/registry.py", "<module>"),           // 4
      native(kLibpython, "PyEval_EvalCode"),
      native(kLibpython, "builtin_exec"),
      py("<frozen importlib._bootstrap>", "_call_with_frames_removed"),
      py("<frozen importlib._bootstrap>", "_find_and_load"),
      native(kLibpython, "PyImport_ImportModuleLevelObject"),  // 9
      py("/srv/app/app.py", "<module>"),                       // 10
      native(kLibpython, "PyEval_EvalCode"),
      native(kLibpython, "Py_RunMain"),
      native("/lib/x86_64-linux-gnu/libc.so.6", "__libc_start_main"),
      native("/usr/bin/python3.12", "_start"),
  };
  // the interpreter frames between registry.py and parsestr are passed over as context
  EXPECT_EQ(rows_text(fs), "0 [1-2 runtime] 3 4 [5-9 import] 10 [11-14 library]");
}

TEST(FoldStack, CallerContextIsThePythonFunctionThatCalledTheProgram) {
  std::vector<FrameOut> fs = {
      py("/srv/app/worker.py", "Worker.work"),  // 0
      py(kStd + "threading.py", "Thread.run"),  // 1: shown
      py(kStd + "threading.py", "Thread._bootstrap_inner"),
      py(kStd + "threading.py", "Thread._bootstrap"),
  };
  EXPECT_EQ(rows_text(fs), "0 1 [2-3 library]");
}

TEST(FoldStack, NativeProgramShowsWhatItCalled) {
  const std::string exe = "/srv/app/build/server", libc = "/lib/x86_64-linux-gnu/libc.so.6";
  std::vector<FrameOut> fs = {
      native(libc, "_IO_file_doallocate"),  // 0
      native(libc, "_IO_doallocbuf"),
      native(libc, "_IO_new_file_overflow"),
      native(libc, "__vfprintf_internal"),  // 3
      native(libc, "_IO_printf"),           // 4
      native(exe, "main", "/srv/app/main.cpp"),
      native(libc, "__libc_start_call_main"),
      native(libc, "__libc_start_main"),
      native(exe, "_start"),
  };
  EXPECT_EQ(rows_text(fs), "0 [1-2 library] 3 4 5 [6-8 library]");
}

TEST(FoldStack, NativeOwnFrameTakesTheInterpreterAsContext) {
  // a C extension of the program calls the C API: PyList_Append is what it called
  std::vector<FrameOut> fs = {
      native("/lib/x86_64-linux-gnu/libc.so.6", "realloc"),
      native(kLibpython, "_PyMem_RawRealloc"),
      native(kLibpython, "PyMem_Realloc"),
      native(kLibpython, "list_resize"),    // 3
      native(kLibpython, "PyList_Append"),  // 4
      native("/srv/app/_ext.cpython-312-x86_64-linux-gnu.so", "ext_keep"),
      native(kLibpython, "cfunction_vectorcall_O"),
      native(kLibpython, "_PyEval_EvalFrameDefault"),
      py("/srv/app/app.py", "<module>"),  // 8
  };
  EXPECT_EQ(rows_text(fs), "0 [1-2 runtime] 3 4 5 [6-7 runtime] 8");
}

TEST(FoldStack, WithoutOwnCodeTheInnermostFramesShow) {
  std::vector<FrameOut> fs;
  for (int i = 0; i < 9; ++i) fs.push_back(native(kLibpython, "f" + std::to_string(i)));
  EXPECT_EQ(rows_text(fs), "0 1 2 3 4 [5-8 runtime]");
  // the import machinery folds there too
  std::vector<FrameOut> imp = {
      py("<frozen importlib._bootstrap_external>", "_compile_bytecode"),  // allocation point: shown
      py("<frozen importlib._bootstrap_external>", "get_code"),
      py("<frozen importlib._bootstrap_external>", "exec_module"),
      py("<frozen importlib._bootstrap>", "_load_unlocked"),
      py(kStd + "json/__init__.py", "<module>"),
  };
  EXPECT_EQ(rows_text(imp), "0 [1-3 import] 4");
}

TEST(FoldStack, ALoneHiddenFrameIsShown) {
  std::vector<FrameOut> fs = {
      py(kStd + "json/decoder.py", "raw_decode"),
      py(kStd + "json/decoder.py", "decode"),
      py(kStd + "json/__init__.py", "loads"),
      py("/srv/app/app.py", "load"),
  };
  EXPECT_EQ(rows_text(fs), "0 1 2 3");
  fs.insert(fs.begin() + 1, py(kStd + "json/scanner.py", "scan"));
  EXPECT_EQ(rows_text(fs), "0 1 2 3 4");  // 1 alone between 0 and context 2-3
}

TEST(FoldStack, DeepRecursionInOwnCodeIsCut) {
  std::vector<FrameOut> fs;
  for (int i = 0; i < 40; ++i) fs.push_back(py("/srv/app/tree.py", "build", i + 1));
  EXPECT_EQ(rows_text(fs), "0 1 2 3 4 5 6 7 8 9 10 [11-35 any] 36 37 38 39");
}

TEST(FoldStack, EveryFrameIsInExactlyOneRow) {
  std::mt19937 rng(7);
  const std::vector<FrameOut> pool = {
      py("/srv/app/a.py", "f"), py(kStd + "json/decoder.py", "decode"), py("<frozen importlib._bootstrap>", "x"),
      native(kLibpython, "eval"), native("/lib/x86_64-linux-gnu/libc.so.6", "malloc"), native("/srv/app/bin", "g"),
  };
  for (int round = 0; round < 2000; ++round) {
    std::vector<FrameOut> fs(rng() % 40);
    for (auto& f : fs) f = pool[rng() % pool.size()];
    size_t next = 0;
    auto rows = fold_stack(fs);
    for (const StackRow& r : rows) {
      ASSERT_EQ(r.first, next);
      ASSERT_GE(r.count, r.folded ? 2u : 1u);
      next += r.count;
    }
    ASSERT_EQ(next, fs.size());
    if (!fs.empty()) {
      ASSERT_FALSE(rows.front().folded) << "the allocation point is always shown";
    }
    ASSERT_LE(rows.size(), 2 * leakscope::report::kMaxShownFrames + 1);  // shown frames, lone ones, folds
  }
}

TEST(StackText, FoldLinesAndAllFrames) {
  std::ostringstream folded, all, none;
  EXPECT_TRUE(stack_text(folded, import_stack(), false));
  EXPECT_NE(folded.str().find("      ... 5 import-machinery frames ...\n"), std::string::npos) << folded.str();
  EXPECT_NE(folded.str().find("      ... 4 library frames ...\n"), std::string::npos) << folded.str();
  EXPECT_NE(folded.str().find("/srv/app/registry.py:1 in _load\n"), std::string::npos) << folded.str();
  EXPECT_EQ(folded.str().find("<frozen importlib"), std::string::npos) << folded.str();

  EXPECT_FALSE(stack_text(all, import_stack(), true));
  EXPECT_NE(all.str().find("<frozen importlib._bootstrap>:1 in _find_and_load\n"), std::string::npos) << all.str();
  EXPECT_EQ(all.str().find("..."), std::string::npos) << all.str();

  EXPECT_FALSE(stack_text(none, {}, false));
  EXPECT_EQ(none.str(), "      <no stack>\n");
}

}  // namespace

// What a text report shows of a stack. JSON always has every frame; text folds a stack around
// the program's own code unless --all-frames is given:
//
//  - Each frame gets a kind from one table, kFrameRules (stack_view.cpp): the program's own
//    code, a library (the standard library, site-/dist-packages, system libraries), the Python
//    interpreter's own native frames (the runtime), or Python's import machinery
//    (<frozen importlib._bootstrap> and friends).
//  - Shown: the innermost frame (where the memory was allocated), every frame of the program's
//    own code, and around each of them some library frames for context: up to kCalleeContext
//    frames it called (the library function the program called, and what that called; for a
//    Python frame the interpreter's C frames in between are passed over), and for a Python
//    frame the kCallerContext Python library function that called it (threading, asyncio, a
//    framework). A stack without own code shows its innermost kNoOwnCodeFrames frames.
//  - Import machinery is never context: it folds, together with the interpreter frames that
//    run the import, into one line ("... 16 import-machinery frames ..."). Every other run of
//    two or more hidden frames folds into one line that counts them; a lone hidden frame is
//    shown (its fold line would take the same room).
//  - At most kMaxShownFrames frames are shown: beyond that the middle ones fold as well (deep
//    recursion in the program's own code).
//
// Pure functions; thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <vector>

#include "report/report.h"

namespace leakscope::report {

enum class FrameKind : uint8_t {
  kOwn,      // the program's own code
  kLibrary,  // standard library, installed packages, system libraries, pseudo-files, unknown
  kRuntime,  // a native frame of the Python interpreter itself (python*, libpython*)
  kImport,   // Python's import machinery (importlib's bootstrap, zipimport)
};
// The kind of one frame, by the first matching rule of kFrameRules (stack_view.cpp).
FrameKind frame_kind(const FrameOut& f);

inline constexpr size_t kCalleeContext = 2;
inline constexpr size_t kCallerContext = 1;
inline constexpr size_t kNoOwnCodeFrames = 5;
inline constexpr size_t kMaxShownFrames = 16;

// What a fold line says the hidden frames were (report/words.cpp words it).
enum class FoldCode : uint8_t {
  kImport,            // import machinery, with the interpreter frames that run it
  kImportAndLibrary,  // import machinery and library frames
  kRuntime,           // the interpreter's native frames only
  kLibrary,           // library (and interpreter) frames
  kAny,               // includes the program's own frames (cut for length)
};

// One line of a folded stack: the frame at `first`, or (folded) frames [first, first+count).
struct StackRow {
  size_t first = 0, count = 1;
  bool folded = false;
  FoldCode code = FoldCode::kLibrary;  // folded rows only
};

// The rows of `frames` (innermost first) in order; every frame is in exactly one row.
std::vector<StackRow> fold_stack(const std::vector<FrameOut>& frames);

// Writes a stack's text lines (frame_line for frames, one line per fold); every frame when
// `all_frames`. "<no stack>" for an empty stack. Returns true when some frames were folded.
bool stack_text(std::ostringstream& o, const std::vector<FrameOut>& frames, bool all_frames);

}  // namespace leakscope::report

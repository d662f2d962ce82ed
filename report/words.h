// Every sentence leakscope writes about a verdict, in one place: why a stack got its verdict,
// what a finding says, what to do about it, and the summary that names the fastest leaking
// site. analysis/ hands over codes and numbers (analysis/verdict.h); only this file turns them
// into English, so a new kind of result adds its words here. Pure functions, thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "analysis/findleaks.h"
#include "analysis/verdict.h"
#include "report/stack_view.h"

namespace leakscope::report {

// One sentence: why a stack got its verdict.
std::string reason_text(const analysis::Reason& r);
// One or two sentences: what a process-level finding says. A leak in stacks is counted in
// stacks here; `report` words it by site instead (leaking_sites_text), once sites have names.
std::string finding_text(const analysis::Finding& f);
// The advice for a finding; empty for RemedyCode::kNone.
std::string remedy_text(analysis::RemedyCode c);
// The leak finding of `report`: how many sites leak and the fastest by its code ("file:line in
// function"), its rate (rate_text) and blocks per second.
std::string leaking_sites_text(size_t sites, const std::string& fastest, double rate_bytes_per_s,
                               double count_per_s);

// Pending asyncio tasks (report/asyncio_report.h): the finding when they pile up, its advice,
// and the text section's lines.
std::string pending_tasks_text(double per_s, uint64_t peak, double peak_at_s, const std::string& site,
                               const std::string& awaiting);
std::string pending_tasks_remedy();
std::string unreferenced_tasks_text(uint64_t n);

// findleaks: what a lost block's first bytes look like (a Python object of its type, a C
// string, hex), and what the scan could not do exactly.
std::string lost_preview(const analysis::LostExample& ex, const std::string& python_type);
std::string model_note_text(analysis::ModelNote n, uint64_t count);

// A folded run of stack frames in text output (report/stack_view.h), without indentation:
// "... 6 import-machinery frames ...". And the note a section ends with when it folded any.
std::string fold_text(size_t frames, FoldCode c);
std::string fold_note_text();

// The collector's view in text (report/section_gc.cpp): its state at the last snapshot, and the
// census made at exit when there is one (null: none). Lines end in '\n'.
std::string gc_summary_text(const analysis::GcPoint& last, const analysis::GcCensus* census);

// Bytes as the report and diff tables show them: "123 B", "1.5 KiB", "2.0 MiB" (binary units,
// one decimal; whole bytes below 1 KiB).
std::string format_bytes(uint64_t b);
// A growth rate for leaking sites: per second from 10 MiB/min up, else per minute (a slow leak
// reads better as "4.8 MiB/min" than "81.9 KiB/s").
std::string rate_text(double bytes_per_s);

}  // namespace leakscope::report

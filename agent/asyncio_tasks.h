// Pending asyncio tasks (docs/retention.md, "Pending asyncio tasks"): a census of the tasks
// asyncio itself keeps (asyncio.tasks._all_tasks, or _scheduled_tasks and _eager_tasks from
// 3.12), grouped by the task object's allocation stack, coroutine and what it awaits, written
// as a TASKS record (capture/format.md). Taken with the GIL held: by a sampler thread of ours
// at every stats point, and by the retention walks, which also say which tasks nothing
// references. Nothing about the program's event loop, task factory or debug mode changes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "agent/retention_graph.h"

namespace leakscope::agent {

// Appends a TASKS record to rec; false when asyncio is not imported. `reached`: the retention
// walk's visited map (objects reachable from the roots), or null. GIL held, tracking off for
// this thread. Consumes the rings first (writer_flush_sync) when there are pending tasks, so
// their allocation stacks are in the live table.
bool tasks_census(OwnArray<uint8_t>* rec, const IndexMap* reached);

// The sampler thread (writer thread calls): started once Python is installed; asked for a
// census at every stats point; its latest record copied into a chunk (0 when none is ready);
// stopped at detach (bounded wait).
void tasks_sampler_request();
size_t tasks_take_record(uint8_t* out, size_t room);
size_t tasks_record_bound();
void tasks_sampler_stop();
// A followed fork child: the parent's sampler thread is not here; a later request starts one.
void tasks_after_fork_child();
// From the atexit callback (GIL held): stops the sampler before the interpreter finalizes.
void tasks_sampler_stop_at_exit();

}  // namespace leakscope::agent

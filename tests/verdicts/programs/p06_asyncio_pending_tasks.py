"""asyncio tasks that never finish: each waits on an Event that is never set.

Models: fire-and-forget handlers (`create_task(handle(...))`, kept in a background set whose
done-callback would discard them) that wait for a shutdown/ack Event nobody sets. Every task,
its coroutine and the request buffer passed to it stay alive.
Expected verdict: leak; site = the create_task line (LEAK-SITE), where the buffer, the
coroutine and the Task are created.

With --cancel-at-exit the program is run by `asyncio.run`, which cancels every pending task when
main returns; each cancelled handler says goodbye on its connection, one at a time (a lock and
a short sleep), so the tasks pile up for the whole run and are freed only in a teardown that
lasts a second or more. Still a leak at the same line: the teardown is the program exiting.

Usage: p06_asyncio_pending_tasks.py [--duration SECONDS] [--cancel-at-exit]   (env DURATION too)
"""
import asyncio
import json
import os
import sys
import time

from workload import arg

REQUEST_SIZE = 4096
TASKS_PER_TICK = 2
TICK = 0.01
GOODBYE_S = 0.0005      # --cancel-at-exit: time each cancelled handler takes to close


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))

BACKGROUND = set()
GOODBYE = None  # asyncio.Lock: one goodbye at a time


async def handle(conn_id, request, ack):
    request[:8] = conn_id.to_bytes(8, "little")
    try:
        await ack.wait()  # never set: the task never finishes
    except asyncio.CancelledError:  # asyncio.run shutting down (--cancel-at-exit)
        async with GOODBYE:
            await asyncio.sleep(GOODBYE_S)
        raise
    return len(request)


async def main_async():
    global GOODBYE
    GOODBYE = asyncio.Lock()
    loop = asyncio.get_running_loop()
    ack = asyncio.Event()
    start = time.monotonic()
    conn = 0
    i = 0
    while i * TICK < DURATION:
        for _ in range(TASKS_PER_TICK):
            task = loop.create_task(handle(conn, bytearray(REQUEST_SIZE), ack))  # LEAK-SITE
            BACKGROUND.add(task)
            task.add_done_callback(BACKGROUND.discard)
            conn += 1
        i += 1
        await asyncio.sleep(max(0.0, start + i * TICK - time.monotonic()))
    elapsed = time.monotonic() - start
    pending = sum(1 for t in BACKGROUND if not t.done())
    return conn, pending, elapsed


def main():
    if "--cancel-at-exit" in sys.argv:
        conn, pending, elapsed = asyncio.run(main_async())
    else:
        conn, pending, elapsed = run_keeping_tasks()
    print("summary " + json.dumps({
        "program": "p06_asyncio_pending_tasks", "tasks": conn, "pending": pending, "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": pending * sys.getsizeof(bytearray(REQUEST_SIZE)) / elapsed}))
    return 0


def run_keeping_tasks():
    # asyncio.run() would cancel the pending tasks at the end; a long-running server never
    # gets there, so run the loop without that clean-up to keep the end state realistic.
    # (The still-pending tasks are destroyed at interpreter exit; say nothing about it.)
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(main_async())


if __name__ == "__main__":
    sys.exit(main())

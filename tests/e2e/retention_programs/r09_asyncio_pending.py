# Handlers that wait for an event nobody sets pile up as pending tasks. The loop is left
# running its last step when the program exits, so they are still pending then.
# HOLDER: global SHUTDOWN (Event)
import asyncio
import time

SHUTDOWN = None


async def handler(i):
    buf = bytearray(1024)  # LEAK-SITE
    buf[0] = i % 256
    await SHUTDOWN.wait()


async def main():
    global SHUTDOWN
    SHUTDOWN = asyncio.Event()
    end = time.monotonic() + 4.0
    i = 0
    tasks = set()
    while time.monotonic() < end:
        for _ in range(20):
            t = asyncio.get_running_loop().create_task(handler(i))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        await asyncio.sleep(0.005)


loop = asyncio.new_event_loop()
loop.run_until_complete(main())

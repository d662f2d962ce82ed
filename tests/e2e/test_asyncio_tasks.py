"""Pending asyncio tasks (docs/retention.md, "Pending asyncio tasks"): counted in every
snapshot, grouped by the line that created them with what they wait on, a finding when they
pile up, and the tasks nothing references at exit."""
import pytest

from conftest import marker_line, write_script

PILE = '''
import asyncio, time
SHUTDOWN = None

async def handler(i):
    buf = bytearray(512)
    await SHUTDOWN.wait()

async def main():
    global SHUTDOWN
    SHUTDOWN = asyncio.Event()
    end = time.monotonic() + 4.0
    while time.monotonic() < end:
        for i in range(10):
            asyncio.get_running_loop().create_task(handler(i))  # SPAWN
        await asyncio.sleep(0.01)

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
'''

EAGER = '''
import asyncio, time
QUEUE = None

async def consumer(i):
    item = await QUEUE.get()

async def main():
    global QUEUE
    QUEUE = asyncio.Queue()
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    end = time.monotonic() + 4.0
    while time.monotonic() < end:
        for i in range(10):
            asyncio.create_task(consumer(i))  # SPAWN
        await asyncio.sleep(0.01)

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
'''

ORPHANS = '''
import asyncio, gc, time
gc.disable()  # so the orphaned tasks are still there when the program ends

async def orphan():
    fut = asyncio.get_running_loop().create_future()
    await fut  # nobody else holds fut: nothing will ever wake this task

async def main():
    for i in range(300):
        asyncio.get_running_loop().create_task(orphan())  # SPAWN
    await asyncio.sleep(0.5)

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
'''

DONE = '''
import asyncio, time

async def quick(i):
    await asyncio.sleep(0)
    return i

async def main():
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        await asyncio.gather(*[quick(i) for i in range(50)])  # SPAWN
        await asyncio.sleep(0.01)

asyncio.run(main())
'''


def run(ls, python, tmp_path, name, text):
    script = write_script(tmp_path, name, text)
    r = ls.cli("run", "-q", "--interval", "0.2", "-o", "capture.lsc", "--", python.path, script)
    assert r.returncode == 0, r.describe()
    return script, ls.report("capture.lsc")


def spawn_site(a, script):
    line = marker_line(script, "# SPAWN")
    for s in a["sites"]:
        if any(f.get("file", "").endswith(script.name) and f["line"] == line for f in s["frames"]):
            return s
    pytest.fail(f"no site at the SPAWN line {line}: {a['sites']}")


@pytest.mark.pythons("py3.9", "py3.10", "debian3.11", "py3.12", "py3.13")
def test_pending_tasks_pile_up(ls, python, tmp_path):
    script, doc = run(ls, python, tmp_path, "pile.py", PILE)
    a = doc["asyncio"]
    assert a is not None
    assert len(a["pending"]) == len(doc["timeline"]["t_s"])
    assert a["pending"][-1] > 1000 and a["pending"][len(a["pending"]) // 3] < a["pending"][-1] / 2, a["pending"]
    site = spawn_site(a, script)
    assert site["count"] > 1000 and site["coroutines"] == ["handler"] and site["awaiting"][0] == "Event.wait", site
    assert site["oldest_age_s"] > 2.5
    assert a["growth_per_s"] and 300 < a["growth_per_s"] < 2000, a["growth_per_s"]
    f = [f for f in doc["findings"] if f["layer"] == "asyncio"]
    assert f and "waiting on Event.wait" in f[0]["text"] and f"pile.py:{marker_line(script, '# SPAWN')}" in f[0]["text"]
    assert doc["verdict"] == "leak"
    text = ls.report_raw("capture.lsc", fmt="text").out
    assert "Pending asyncio tasks" in text and "waiting on Event.wait" in text


@pytest.mark.pythons("py3.12", "py3.13")
def test_eager_tasks_are_counted(ls, python, tmp_path):
    script, doc = run(ls, python, tmp_path, "eager.py", EAGER)
    site = spawn_site(doc["asyncio"], script)
    assert site["count"] > 1000 and site["coroutines"] == ["consumer"] and site["awaiting"][0] == "Queue.get", site


@pytest.mark.pythons("debian3.11", "py3.13")
def test_tasks_nothing_references(ls, python, tmp_path):
    script, doc = run(ls, python, tmp_path, "orphans.py", ORPHANS)
    a = doc["asyncio"]
    site = spawn_site(a, script)
    assert site["count"] == 300 and site["unreferenced"] == 300, site
    assert a["unreferenced"] == 300
    assert "nothing references" in ls.report_raw("capture.lsc", fmt="text").out


@pytest.mark.pythons("debian3.11")
def test_tasks_that_finish_are_no_finding(ls, python, tmp_path):
    script, doc = run(ls, python, tmp_path, "done.py", DONE)
    a = doc["asyncio"]
    assert a is not None and max(a["pending"]) < 200, a["pending"]
    assert a["growth_per_s"] is None
    assert not [f for f in doc["findings"] if f["layer"] == "asyncio"]


@pytest.mark.pythons("debian3.11")
def test_no_asyncio_no_section(ls, python, tmp_path):
    script = write_script(tmp_path, "plain.py", "x = [str(i) for i in range(100000)]\n")
    r = ls.cli("run", "-q", "-o", "capture.lsc", "--", python.path, script)
    assert r.returncode == 0 and r.err == "", r.describe()
    assert ls.report("capture.lsc")["asyncio"] is None


@pytest.mark.pythons("debian3.11")
def test_censuses_are_thinned_with_the_snapshots(ls, python, tmp_path):
    """A census at every stats point would grow the capture with time: the thinning rewrite
    buckets them as it buckets snapshots."""
    script = write_script(tmp_path, "pile.py", PILE)
    r = ls.cli("run", "-q", "--interval", "0.05", "--full-resolution", "1", "--thin-at", "4096",
               "-o", "capture.lsc", "--", python.path, script)
    assert r.returncode == 0, r.describe()
    doc = ls.report("capture.lsc")
    assert doc["capture"]["thinned"] > 0, doc["capture"]
    a = doc["asyncio"]
    assert 0 < a["censuses"] <= doc["capture"]["snapshots"] + 3, (a["censuses"], doc["capture"]["snapshots"])
    assert a["pending"][-1] > 1000 and a["growth_per_s"], a["pending"]

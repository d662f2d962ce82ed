"""A small "service" with a real leak, a cache that levels off, and transient garbage.

`make demo` runs it under leakscope and prints the report: the top stack should be the line
that keeps request records in REQUEST_LOG (the leak), not the line that builds the transient
response string.
"""
import functools
import os
import time

REQUEST_LOG = []  # grows forever: the leak


@functools.lru_cache(maxsize=256)  # bounded: fills, then stays flat
def render_template(name):
    return ("<html>%s</html>" % name) * 20


def handle(i):
    payload = {"id": i, "user": "user-%d" % (i % 1000), "items": list(range(8))}
    response = str(payload) + render_template("page-%d" % (i % 300))  # transient
    REQUEST_LOG.append((i, "req-%d" % i))  # LEAK: every request is kept
    return len(response)


def main():
    seconds = float(os.environ.get("DEMO_SECONDS", "5"))
    total = 0
    i = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(1000):
            total += handle(i)
            i += 1
        time.sleep(0.002)  # a service waits for requests too
    print("served", len(REQUEST_LOG), "requests,", total, "bytes")


if __name__ == "__main__":
    main()

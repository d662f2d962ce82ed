"""A web-style request handler that keeps every request object in a global registry.

Models: a "debug registry" / audit list that was meant to hold the last few requests but
keeps all of them. Every handled request stays reachable forever.
Expected verdict: leak; site = the line that builds the Request (marked LEAK-SITE).

Usage: p01_request_registry.py [--duration SECONDS] [--exit-status N]   (env DURATION too)
Prints one `summary {json}` line at the end.
"""
import json
import os
import sys
import time

from workload import arg, paced

BODY_SIZE = 2048        # bytes of request body kept per request
REQUESTS_PER_TICK = 2
TICK = 0.01             # seconds


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))
EXIT_STATUS = int(arg("--exit-status", "0"))


class Request:
    __slots__ = ("rid", "path", "body", "status")

    def __init__(self, rid, path, body):
        self.rid = rid
        self.path = path
        self.body = body
        self.status = 0


REGISTRY = []  # every request ever handled ("for debugging")


def handle(rid):
    req = Request(rid, f"/api/v1/items/{rid:08d}", bytearray(BODY_SIZE))  # LEAK-SITE
    REGISTRY.append(req)
    req.body[0:8] = rid.to_bytes(8, "little")
    # transient work: a response that is built and thrown away
    response = b"HTTP/1.1 200 OK\r\n\r\n" + bytes(req.body[:1024]) * 4
    req.status = 200 if len(response) > 0 else 500
    return req.status


def main():
    t0 = time.monotonic()
    rid = 0
    for _ in paced(DURATION, TICK):
        for _ in range(REQUESTS_PER_TICK):
            handle(rid)
            rid += 1
    elapsed = time.monotonic() - t0
    r = REGISTRY[-1]
    per_request = sys.getsizeof(r) + sys.getsizeof(r.path) + sys.getsizeof(r.body)
    print("summary " + json.dumps({
        "program": "p01_request_registry", "requests": rid, "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": len(REGISTRY) * per_request / elapsed}))
    sys.stdout.flush()
    return EXIT_STATUS


if __name__ == "__main__":
    sys.exit(main())

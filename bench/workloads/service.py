"""service: a busy multithreaded Python service for bench/attach_cycles.py.

Usage: python service.py DIR   -- 4 worker threads build and drop small dicts and lists (a
steady churn, no leak); the main thread appends "<monotonic seconds> <total iterations>" to
DIR/rate every 0.25 s and ends when DIR/stop exists, printing "done". Nothing else is printed,
so two runs print the same.
"""
import os
import sys
import threading
import time

counts = [0, 0, 0, 0]
stop = False


def worker(n):
    i = 0
    while not stop:
        for _ in range(100):
            d = {"k": i, "v": [i, n] * 5, "s": "x%d" % i}
            del d
            i += 1
        counts[n] = i


def main(d):
    global stop
    ts = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in ts:
        t.start()
    with open(os.path.join(d, "rate"), "a") as f:
        while not os.path.exists(os.path.join(d, "stop")):
            time.sleep(0.25)
            f.write("%.4f %d\n" % (time.monotonic(), sum(counts)))
            f.flush()
    stop = True
    for t in ts:
        t.join()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

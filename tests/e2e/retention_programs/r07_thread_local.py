# A thread-local list in a long-lived worker thread.
# HOLDER: global STATE (_thread._local)
import threading
import time

STATE = threading.local()


def worker(stop):
    STATE.history = []
    i = 0
    while not stop.is_set():
        for _ in range(50):
            STATE.history.append(("event", i, "payload-%d" % i))  # LEAK-SITE
            i += 1
        time.sleep(0.005)


def main():
    stop = threading.Event()
    t = threading.Thread(target=worker, args=(stop,), name="worker", daemon=True)
    t.start()
    time.sleep(4.0)
    # The worker is still running (and its thread-local alive) when the program exits.


main()

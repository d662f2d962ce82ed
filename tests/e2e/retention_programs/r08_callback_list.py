# Bound methods registered as callbacks on a long-lived bus and never removed.
# HOLDER: global BUS (EventBus)
# HOLDER: attribute callbacks (list)
import time


class EventBus:
    def __init__(self):
        self.callbacks = []

    def subscribe(self, fn):
        self.callbacks.append(fn)


class Request:
    def __init__(self, i):
        self.i = i
        self.headers = {"id": str(i), "agent": "test"}  # LEAK-SITE

    def on_shutdown(self):
        pass


BUS = EventBus()


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            req = Request(i)
            BUS.subscribe(req.on_shutdown)
            i += 1
        time.sleep(0.005)


main()

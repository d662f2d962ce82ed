# A logging handler that keeps every record it is given.
# HOLDER: (KeepingHandler)
# HOLDER: attribute records (list)
import logging
import time


class KeepingHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


log = logging.getLogger("app.requests")
log.setLevel(logging.INFO)
log.addHandler(KeepingHandler())
log.propagate = False


def serve(i):
    log.info("served request %d", i)  # LEAK-SITE


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            serve(i)
            i += 1
        time.sleep(0.005)


main()

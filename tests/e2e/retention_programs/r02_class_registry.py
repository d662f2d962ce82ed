# A class attribute used as a registry of every instance.
# HOLDER: class Session
# HOLDER: attribute registry (dict)
import time


class Session:
    registry = {}

    def __init__(self, sid):
        self.sid = sid
        self.data = {"sid": sid, "cart": [sid] * 8}  # LEAK-SITE
        Session.registry[sid] = self


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            Session(i)
            i += 1
        time.sleep(0.005)


main()

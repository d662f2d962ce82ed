# A module-level audit log that is never trimmed.
# HOLDER: module __main__
# HOLDER: global AUDIT (list)
import time

AUDIT = []


def record(i):
    AUDIT.append(("login", i, "user-%d" % i))  # LEAK-SITE


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            record(i)
            i += 1
        time.sleep(0.005)


main()

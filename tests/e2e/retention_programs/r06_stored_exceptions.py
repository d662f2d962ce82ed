# Caught exceptions kept in a list: each traceback keeps the failing frame and its locals.
# HOLDER: module __main__
# HOLDER: global ERRORS (list)
# HOLDER: (traceback)
import time

ERRORS = []


def handle(i):
    scratch = bytearray(2048)  # LEAK-SITE
    scratch[0] = i % 256
    raise ValueError("bad request %d" % i)


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(20):
            try:
                handle(i)
            except ValueError as e:
                ERRORS.append(e)
            i += 1
        time.sleep(0.005)


main()

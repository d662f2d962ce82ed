# The classic mutable default argument.
# HOLDER: function remember
# HOLDER: defaults (tuple)
# HOLDER: [0] (list)
import time


def remember(item, seen=[]):
    seen.append(item)
    return len(seen)


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            remember(["item", i, i * 2])  # LEAK-SITE
            i += 1
        time.sleep(0.005)


main()

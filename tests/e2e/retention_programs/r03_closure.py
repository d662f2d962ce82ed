# A handler closing over a list that only grows.
# HOLDER: function make_handler.<locals>.handler
# HOLDER: closure seen (list)
import time


def make_handler():
    seen = []

    def handler(request):
        seen.append({"request": request, "body": "x" * 64})  # LEAK-SITE
        return len(seen)

    return handler


HANDLERS = {"/login": make_handler()}


def main():
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            HANDLERS["/login"](i)
            i += 1
        time.sleep(0.005)


main()

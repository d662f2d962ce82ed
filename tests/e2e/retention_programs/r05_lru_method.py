# functools.lru_cache on a method: the cache keeps every argument, `self` included.
# HOLDER: class Service
# HOLDER: attribute lookup (functools._lru_cache_wrapper)
import functools
import time


class Record:
    def __init__(self, key):
        self.key = key
        self.fields = [key] * 16  # LEAK-SITE


class Service:
    @functools.lru_cache(maxsize=None)
    def lookup(self, key):
        return Record(key)


def main():
    svc = Service()
    end = time.monotonic() + 4.0
    i = 0
    while time.monotonic() < end:
        for _ in range(50):
            svc.lookup(i)
            i += 1
        time.sleep(0.005)


main()

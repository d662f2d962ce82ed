"""Builds about N live Python objects and exits (bench/retention.py): a global registry of
class instances, each with an attribute dict (3.9/3.10) or inline values, a tuple, an int and
a str, the shapes real services keep. Five objects per record (with the registry's int key);
the interpreter itself brings about 10,000 more."""
import sys


class Record:
    def __init__(self, i):
        self.key = i + 1000              # an int object
        self.name = "rec-%d" % i         # a str object
        self.pair = (self.key, self.name)  # a tuple


REGISTRY = {}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    for i in range(n // 5):              # instance, int, str, tuple, and the registry's int key
        REGISTRY[i] = Record(i)
    print("ready", len(REGISTRY), flush=True)


main()

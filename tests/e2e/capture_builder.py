"""Builds capture files by hand from capture/format.md (version 1), for hostile-input tests.

Compression goes through the `zstd` command line tool (content checksum on by default).
"""
import shutil
import struct
import subprocess

TAG = {
    "ALLOC_OBJ": 0x10, "ALLOC_MEM": 0x11, "FREE": 0x12, "ARENA_ALLOC": 0x13, "ARENA_FREE": 0x14,
    "ALLOC_RAW": 0x20, "ALLOC_MALLOC": 0x21, "MMAP": 0x22, "MUNMAP": 0x23, "TICK": 0x2F,
    "FRAME_PY": 0x30, "FRAME_NATIVE": 0x31, "STACK": 0x32, "CODE": 0x33, "MODULE": 0x34,
    "INFO": 0x35, "STATS": 0x36, "STOP": 0x37, "MESSAGE": 0x38, "SNAPSHOT": 0x39, "FINDLEAKS": 0x3A,
    "RETAIN": 0x3B, "GCSTATS": 0x3C,
}
STREAM_D, STREAM_P, STREAM_N = 1, 2, 3


def zstd_available() -> bool:
    return shutil.which("zstd") is not None


def varint(n: int) -> bytes:
    assert n >= 0
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def svarint(n: int) -> bytes:
    return varint((n << 1) ^ (n >> 63) if n < 0 else n << 1)


def string(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return varint(len(b)) + b


def rec(tag: str, *fields: bytes) -> bytes:
    return bytes([TAG[tag]]) + b"".join(fields)


def section(stream: int, records: bytes, length: int = None) -> bytes:
    return bytes([stream]) + varint(len(records) if length is None else length) + records


def header(pid: int = 4242, flags: int = 0, version: int = 1, magic: bytes = b"LKSCOPE\0") -> bytes:
    h = magic + struct.pack("<IIQQI", version, 64, pid, 1_700_000_000_000_000_000, flags)
    return h + bytes(64 - len(h))


def compress(raw: bytes) -> bytes:
    r = subprocess.run(["zstd", "-q", "-c", "--check", "-3"], input=raw, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def chunk(raw: bytes, seq: int, raw_size: int = None, compressed: bytes = None) -> bytes:
    c = compress(raw) if compressed is None else compressed
    return struct.pack("<IIII", 0x4843534C, len(c), len(raw) if raw_size is None else raw_size, seq) + c


def gcstats(ns: int, flags: int = 1, debug: int = 0, gens=((0, 700, 0, 0, 0),) * 3, garbage: int = 0,
            long_lived=(0, 0), census=None) -> bytes:
    """A GCSTATS record: gens = 3 x (count, threshold, collections, collected, uncollectable);
    census = (objects gen 0, 1, 2, frozen), written when flags has bit 2 (4)."""
    fields = [varint(ns), varint(flags), varint(debug)]
    for g in gens:
        fields += [varint(v) for v in g]
    fields += [varint(garbage), varint(long_lived[0]), varint(long_lived[1])]
    if census is not None:
        fields += [varint(v) for v in census]
    return rec("GCSTATS", *fields)


def minimal_raw(block_size: int = 4096, count: int = 3, stop: bool = True) -> bytes:
    """One native frame, one stack, `count` live malloc blocks of block_size, then STOP."""
    d = (rec("INFO", string("argv"), string("crafted\0capture")) +
         rec("FRAME_NATIVE", varint(0x401000)) +
         rec("STACK", varint(0), varint(1)))
    n = b""
    addr_prev, stack_prev = 0, 0
    for i in range(count):
        addr = 0x10000000 + i * 0x10000
        n += rec("ALLOC_MALLOC", svarint(addr - addr_prev), varint(block_size), svarint(1 - stack_prev))
        addr_prev, stack_prev = addr, 1
    raw = section(STREAM_D, d) + section(STREAM_N, n)
    if stop:
        raw += section(STREAM_D, rec("STOP", varint(1_000_000), string("exit")))
    return raw

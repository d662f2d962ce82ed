"""Loading the leakscope agent into this very process (docs/python-api.md, "Loading into self").

The agent is dlopen'ed with ctypes and its attach entry is called on the calling thread, the
same entry `leakscope attach` calls through ptrace (cli/inject.cpp). The entry is a hidden
symbol (the agent exports nothing, agent/agent.map), so its address is its .symtab value plus
the load bias dlinfo reports. Calling it from Python is a safe point by construction: this
thread is in no allocator and no loader lock, which is what `attach` has to search for.
"""
import ctypes
import mmap
import struct
import time

_ENTRY = b"leakscope_attach_entry"
_RTLD_DI_LINKMAP = 2
_SHT_SYMTAB = 2


def _symtab_value(path, name):
    """st_value of `name` in the ELF64 .symtab of `path`, or None."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _symtab_value_in(data, path, name)


def _symtab_value_in(data, path, name):
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise OSError(f"{path} is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for sh in sections:
        if sh[1] != _SHT_SYMTAB:
            continue
        strtab = sections[sh[6]]
        str_off, str_size, sym_off, entsize = strtab[4], strtab[5], sh[4], sh[9] or 24
        # The name's offset in the string table first, then the one symbol that points there:
        # two C-speed scans instead of decoding thousands of names one by one.
        at = data.find(b"\0" + name + b"\0", str_off, str_off + str_size)
        if at < 0:
            return None
        want = at + 1 - str_off
        syms = data[sym_off:sym_off + sh[5] // entsize * entsize]
        for st_name, _info, _other, _shndx, st_value, _size in struct.iter_unpack("<IBBHQQ", syms):
            if st_name == want and st_value:
                return st_value
    return None


def _load_bias(lib):
    libc = ctypes.CDLL(None)
    lm = ctypes.c_void_p()
    if libc.dlinfo(ctypes.c_void_p(lib._handle), _RTLD_DI_LINKMAP, ctypes.byref(lm)) != 0 or not lm.value:
        raise OSError("dlinfo cannot tell where the agent is loaded")
    return ctypes.c_size_t.from_address(lm.value).value  # struct link_map: l_addr comes first


class _Allocator(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p), ("calloc", ctypes.c_void_p),
                ("realloc", ctypes.c_void_p), ("free", ctypes.c_void_p)]


def _obj_allocator():
    a = _Allocator()
    ctypes.pythonapi.PyMem_GetAllocator(ctypes.c_int(2), ctypes.byref(a))  # PYMEM_DOMAIN_OBJ, under the GIL
    return a.malloc


def attach_self(agent_path, config, install_timeout_s=5.0):
    """Starts tracking this process. Returns (None, monotonic start time), or (why it could
    not, None): the program runs on untracked."""
    try:
        value = _symtab_value(agent_path, _ENTRY)
        if value is None:
            return f"cannot find {_ENTRY.decode()} in {agent_path}", None
        before = _obj_allocator()
        lib = ctypes.CDLL(agent_path)  # never closed: the agent is never dlclose'd (docs/attach.md)
        entry = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)(_load_bias(lib) + value)
    except (OSError, ValueError, struct.error) as e:  # ValueError: an empty file; struct.error: a cut one
        return f"cannot load the agent {agent_path}: {e}", None
    reply = ctypes.create_string_buffer(4096)
    # The capture's clock starts inside the entry: read ours just before, so times we compute
    # are at most microseconds past the capture's.
    t0 = time.monotonic()
    # A CFUNCTYPE call releases the GIL: the agent's installer thread needs it.
    rc = entry(config.encode(), reply, len(reply))
    if rc != 0:
        return reply.value.decode(errors="replace") or f"the agent refused (code {rc})", None
    # The Python allocator wrappers are installed by an agent thread once it holds the GIL;
    # wait for them so what the caller allocates next is seen.
    deadline = time.monotonic() + install_timeout_s
    while _obj_allocator() == before and time.monotonic() < deadline:
        time.sleep(0.002)
    return None, t0

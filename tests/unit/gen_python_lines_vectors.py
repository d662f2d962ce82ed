#!/usr/bin/env python3
"""Generate line-table test vectors for symbolize/python_lines.cpp from a real CPython.

Role: run under CPython 3.9 .. 3.13; compiles a set of varied functions (plus a few stdlib
modules) and writes, for every code object (recursing into co_consts), the line table the
leakscope tracker records (3.9: co_lnotab, kind 9; 3.10: co_linetable, kind 10; 3.11+:
co_linetable, kind 11) and the line CPython itself gives for every instruction position.
The expected lines come from the interpreter, mirroring what CPython's PyCode_Addr2Line does:
  3.9:   dis.findlinestarts(), then the last start <= the byte offset (positions are bytes).
  3.10+: code.co_lines() (start, end, line) byte ranges; position p is byte 2*p; a line of
         None is written as -1 (positions are 2-byte code units).

Usage:
  python3.X gen_python_lines_vectors.py > tests/unit/data/python_lines_3.X.txt
  (or pass the output path as the only argument)

Output format (text, one record per line, '#' starts a comment line):
  code <kind> <firstlineno> <npositions> <name>
  table <hex of the raw table, or - when empty>
  <start> <end> <line>        positions [start, end) map to <line>; the ranges cover
  ...                         [0, npositions) in order
  end
"""
import dis
import os
import sys
import types

# Varied source: loops, multi-line expressions, try/except, comprehensions, lines without
# code, a function starting past line 300, a jump over more than 255 bytes, line deltas
# beyond +-127 and +-128.
PARTS = []

PARTS.append('''
import os

def simple(a, b):
    x = a + b

    # a comment line: no code here

    y = x * 2
    return y

def loops(n):
    total = 0
    for i in range(n):
        if i % 2:
            continue
        while total < i:
            total += 1
            if total > 100:
                break
    else:
        total -= 1
    return total

def multiline(a, b, c):
    return (
        a
        + b
        * c
    ) if a else foo(
        a,
        b,
        c,
    )

def tryexcept(x):
    try:
        y = 1 / x
    except ZeroDivisionError as e:
        y = None
    except (TypeError,
            ValueError):
        raise
    else:
        y += 1
    finally:
        x = 0
    return y

def comprehensions(xs):
    a = [x * 2 for x in xs if x]
    b = {x: y
         for x in xs
         for y in xs}
    c = (x for x in xs)
    d = {x for x in xs}
    return a, b, list(c), d, lambda q: (q +
                                       1)

class K:
    """Docstring only line."""
    attr = 1

    def method(self):
        return self.attr

    @property
    def prop(self):
        return [self.attr
                for _ in range(3)]

async def coro(x):
    async with x as y:
        await y
    async for z in x:
        pass
    return [z async for z in x]

def gen():
    yield 1
    yield from range(3)

def with_stmt(path):
    with open(path) as f, open(path) as g:
        return f.read() + g.read()

def nested(a):
    def inner(b):
        def innermost(c):
            return a + b + c
        return innermost
    return inner

def closure_loop(xs):
    out = []
    for x in xs:
        try:
            out.append(lambda: x)
        except Exception:
            continue
        finally:
            pass
    return out
''')

# A long forward jump (> 255 bytes): a big if-body.
PARTS.append('\ndef long_jump(x):\n    if x:\n' +
             ''.join('        x = x + %d\n' % i for i in range(150)) +
             '    return x\n')

# A single line with more than 255 bytes of bytecode.
PARTS.append('\ndef long_line(a):\n    return [' + ', '.join('a + %d' % i for i in range(150)) +
             ']\n')

# A line delta > 127 (and > 255) between consecutive statements.
PARTS.append('\ndef big_line_gap(x):\n    x = 1\n' + '\n' * 140 + '    x = 2\n' +
             '\n' * 300 + '    return x\n')

# A negative line delta < -128: a call whose arguments span many lines; the call
# instruction goes back to the first line.
PARTS.append('\ndef big_back_jump(f, a):\n    return f(\n' + '\n' * 200 + '        a,\n' +
             '\n' * 5 + '        a)\n')

# A function starting past line 300.
PARTS.append('\n' * 320 + '''
def late_function(a):
    b = a
    for i in range(a):
        b += i
    return b
''')

if sys.version_info >= (3, 10):
    PARTS.append('''
def matcher(cmd):
    match cmd:
        case [x, y]:
            return x
        case {"k": v}:
            return v
        case str() | bytes():
            return 1
        case _:
            return None
''')

STDLIB_MODULES = ['textwrap', 'fnmatch', 'contextlib']


def table_of(code):
    if sys.version_info < (3, 10):
        return 9, code.co_lnotab
    if sys.version_info < (3, 11):
        return 10, code.co_linetable
    return 11, code.co_linetable


def expected_lines(code):
    """One expected line per position (bytes on 3.9, code units on 3.10+)."""
    n = len(code.co_code)
    if sys.version_info < (3, 10):
        starts = list(dis.findlinestarts(code))
        out = []
        k = -1
        for off in range(n):
            while k + 1 < len(starts) and starts[k + 1][0] <= off:
                k += 1
            if k < 0:
                raise SystemExit('no line start <= %d in %r' % (off, code))
            out.append(starts[k][1])
        return out
    units = n // 2
    out = [None] * units
    for start, end, line in code.co_lines():
        for b in range(start, end):
            if b % 2 == 0 and b // 2 < units:
                out[b // 2] = -1 if line is None else line
    for p, v in enumerate(out):
        if v is None:
            raise SystemExit('position %d not covered by co_lines() in %r' % (p, code))
    return out


def walk(code, seen):
    if id(code) in seen:
        return
    seen[id(code)] = code
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c, seen)


def emit(code, out):
    kind, table = table_of(code)
    lines = expected_lines(code)
    name = getattr(code, 'co_qualname', code.co_name).replace(' ', '_') or '_'
    out.append('code %d %d %d %s' % (kind, code.co_firstlineno, len(lines), name))
    out.append('table %s' % (table.hex() if table else '-'))
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j] == lines[i]:
            j += 1
        out.append('%d %d %d' % (i, j, lines[i]))
        i = j
    out.append('end')


def main():
    out = ['# leakscope python line-table vectors, generated by '
           'tests/unit/gen_python_lines_vectors.py',
           '# python %s' % sys.version.split()[0]]
    sources = [('<leakscope-test>', ''.join(PARTS))]
    for mod in STDLIB_MODULES:
        spec = __import__('importlib.util').util.find_spec(mod)
        with open(spec.origin, encoding='utf-8') as f:
            sources.append((os.path.basename(spec.origin), f.read()))
    seen = {}
    for filename, src in sources:
        top = compile(src, filename, 'exec', dont_inherit=True)
        for code in walk(top, seen):
            emit(code, out)
    text = '\n'.join(out) + '\n'
    if len(sys.argv) > 1:
        with open(sys.argv[1], 'w') as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == '__main__':
    main()

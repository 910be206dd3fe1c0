#!/usr/bin/env python3
"""Writes the seed inputs of corpus/ for fuzz_ops (the format is read by run() in fuzz_ops.c):
each operation is an opcode byte, a slot byte, then its arguments. Deterministic: rerun to get the
same files. Usage: make_corpus.py [DIR] (default: corpus/ beside this script)."""
import os
import random
import sys

MALLOC, CALLOC, REALLOC, ALIGNED, FREE, FREE_SIZED, USABLE, TRIM, HANDOFF = 0, 3, 4, 6, 7, 9, 10, 11, 12


def size(sel, v):
    """Size selector (see in_size) and a 16-bit value."""
    return bytes([sel, v & 0xff, v >> 8])


def small(n):
    return size(0, n)


def large(v):
    return size(13, v)


def op(code, slot, *args):
    return bytes([code, slot]) + b"".join(args)


def seed_small():
    out = b""
    for i in range(40):
        out += op(MALLOC, i, small(i * 25))
    for i in range(0, 40, 3):
        out += op(FREE, i)
    for i in range(40):
        out += op(USABLE, i) + op(FREE_SIZED, i)
    return out


def seed_realloc_across_threshold():
    out = op(MALLOC, 1, small(10))
    for sel, v in [(9, 1000), (9, 30000), (12, 60), (12, 70), (13, 100), (13, 40000), (0, 8), (13, 65535)]:
        out += op(REALLOC, 1, size(sel, v))
    return out + op(FREE, 1)


def seed_aligned():
    out = b""
    for i, a in enumerate([4, 6, 8, 12, 16, 17, 20]):
        for how in range(5):
            out += op(ALIGNED, (i * 5 + how) % 64, bytes([a]), small(100 + i * 50), bytes([how]))
    return out + op(TRIM, 0, bytes([0, 0]))


def seed_handoff():
    out = b""
    for i in range(64):
        out += op(MALLOC, i, size(i % 16, i * 997))
    for i in range(64):
        out += op(HANDOFF | (16 if i % 2 else 0), i)
    return out


def seed_random(seed, count):
    r = random.Random(seed)
    return bytes(r.randrange(256) for _ in range(count))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out_dir, exist_ok=True)
    seeds = {
        "small": seed_small(),
        "realloc_threshold": seed_realloc_across_threshold(),
        "aligned": seed_aligned(),
        "handoff": seed_handoff(),
        "random1": seed_random(1, 600),
        "random2": seed_random(2, 2000),
        "calloc_calloc": op(CALLOC, 3, bytes([7]), size(13, 3000)) + op(CALLOC, 4, bytes([2]), small(999))
        + op(FREE_SIZED, 3) + op(FREE_SIZED, 4),
    }
    for name, data in seeds.items():
        with open(os.path.join(out_dir, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()

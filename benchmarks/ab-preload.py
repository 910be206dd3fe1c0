#!/usr/bin/env python3
"""Two builds of tamalloc side by side: every workload's glibc binary run under LD_PRELOAD of build A's
and build B's libtamalloc.so, interleaved (A B A B ...), CPU time (user+sys from wait4) and wall time
medians, and the geometric mean of B/A. For the cost of a build option (hardening, statistics):

    benchmarks/ab-preload.py build/compare build/compare-nohard --reps 7 --scale 0.3

or of a setting, with one build and an environment variable for side B:

    benchmarks/ab-preload.py build/compare build/compare --env-b TAMALLOC_DECAY_MS=-1
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time


def run(binary, preload, scale, extra):
    env = dict(os.environ, LD_PRELOAD=preload, **extra)
    env.pop("MALLOC_PERTURB_", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "--scale", str(scale)], env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if status != 0:
        sys.exit(f"{binary} under {preload} failed (status {status})")
    return ru.ru_utime + ru.ru_stime, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_a")
    ap.add_argument("build_b")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--workloads", default="")
    ap.add_argument("--env-a", action="append", default=[], help="NAME=VALUE for side A's runs")
    ap.add_argument("--env-b", action="append", default=[], help="NAME=VALUE for side B's runs")
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.build_a, "benchmarks", "manifest.json")))
    libs = [os.path.abspath(os.path.join(b, "libtamalloc.so")) for b in (args.build_a, args.build_b)]
    names = args.workloads.split(",") if args.workloads else manifest["workloads"]
    envs = [dict(kv.split("=", 1) for kv in side) for side in (args.env_a, args.env_b)]
    print(f"| workload | A cpu s | B cpu s | B/A cpu | A wall s | B wall s | B/A wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    logs = {"cpu": [], "wall": []}
    for name in names:
        binary = manifest["allocators"]["glibc"]["workloads"][name]
        samples = {0: [], 1: []}
        for _ in range(args.reps):
            for side in (0, 1):
                samples[side].append(run(binary, libs[side], args.scale, envs[side]))
        med = [(statistics.median(c for c, _ in samples[s]), statistics.median(w for _, w in samples[s])) for s in (0, 1)]
        rc, rw = med[1][0] / med[0][0], med[1][1] / med[0][1]
        logs["cpu"].append(math.log(rc))
        logs["wall"].append(math.log(rw))
        print(f"| {name} | {med[0][0]:.3f} | {med[1][0]:.3f} | {rc:.3f} | {med[0][1]:.3f} | {med[1][1]:.3f} | {rw:.3f} |")
        sys.stdout.flush()
    g = {k: math.exp(sum(v) / len(v)) for k, v in logs.items()}
    print(f"| **geomean B/A** | | | **{g['cpu']:.3f}** | | | **{g['wall']:.3f}** |")


if __name__ == "__main__":
    main()

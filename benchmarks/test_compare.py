#!/usr/bin/python3
"""The `benchmarks` test suite: runs compare.py briefly (three small workloads, one of them
time-bounded and scored by throughput, and two micro benchmarks, one repetition, every allocator that
is installed) into a temporary directory and checks that it succeeds, that results.csv and
results.json are written and parse, and, where matplotlib is there, that the figures are written.

usage: test_compare.py COMPARE_PY BUILD_ROOT
"""

import csv
import json
import os
import subprocess
import sys
import tempfile

WORKLOADS = ["small_churn", "producer_consumer", "larson_server"]
THROUGHPUT = ("larson_server", "throughput_ops_per_s")


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401 (only whether it imports)
        return True
    except ImportError:
        return False


def main():
    compare, build = sys.argv[1], sys.argv[2]
    with open(os.path.join(build, "benchmarks", "manifest.json")) as f:
        have_micro = json.load(f).get("have_micro")
    with tempfile.TemporaryDirectory(prefix="tamalloc-bench-") as out:
        cmd = [sys.executable, compare, "--build", build, "--out", out, "--quick", "--reps", "1",
               "--scale", "0.02", "--workloads", ",".join(WORKLOADS + ["micro"]),
               "--micro-filter", "^(pair/64|cross_thread_free.*)$", "--timeout", "60"]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            print("compare.py exited with %d" % proc.returncode)
            return 1

        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
        with open(os.path.join(out, "results.csv"), newline="") as f:
            rows = list(csv.DictReader(f))

        errors = []
        allocators = list(res["allocators"])
        if "glibc" not in allocators:
            errors.append("glibc column missing: %s" % allocators)
        for w in WORKLOADS:
            for a in allocators:
                s = res["workloads"].get(w, {}).get(a)
                if not s or s.get("failed") or not s["wall_s"]["median"] > 0:
                    errors.append("results.json: no wall time for %s × %s" % (w, a))
                if not any(r["name"] == w and r["allocator"] == a and r["metric"] == "wall_s" for r in rows):
                    errors.append("results.csv: no wall_s row for %s × %s" % (w, a))
        w, key = THROUGHPUT
        for a in allocators:
            if res["workloads"].get(w, {}).get(a, {}).get(key, {}).get("median", 0) <= 0:
                errors.append("results.json: no %s for %s × %s" % (key, w, a))
        if "### Throughput" not in open(os.path.join(out, "results.md")).read():
            errors.append("results.md: no throughput table")
        if have_matplotlib():
            for name in ["results-time.png", "results-peak-rss.png", "results-throughput.png"]:
                if not os.path.exists(os.path.join(out, name)):
                    errors.append("%s not written" % name)
        if have_micro:
            for a in allocators:
                if res["micro"].get("pair/64", {}).get(a, {}).get("median", 0) <= 0:
                    errors.append("results.json: no micro pair/64 for %s" % a)
            if not any(r["kind"] == "micro" and r["metric"] == "ns_per_op" for r in rows):
                errors.append("results.csv: no micro rows")
        for name in ["results.md", "results.csv", "results.json"]:
            if not os.path.getsize(os.path.join(out, name)):
                errors.append("%s is empty" % name)
        for e in errors:
            print("FAIL:", e)
        if not errors:
            print("ok: %d allocators (%s), %d csv rows" % (len(allocators), ", ".join(allocators), len(rows)))
        return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The `benchmarks` test suite: runs compare.py briefly (three small workloads, one of them
time-bounded and scored by throughput, and two micro benchmarks, one repetition, every allocator that
is installed) into a temporary directory and checks that it succeeds, that results.csv and
results.json are written and parse, and, where matplotlib is there, that the figures are written.
Then the secure variant's columns: that `--allocators secure` selects the four tamalloc columns and
the default set none of the secure ones, that a static column holding the wrong archive is refused,
that the secure/default ratios and their table are right on made-up medians, and that a short run
with `--allocators secure` writes them (results.md and results.json).

usage: test_compare.py COMPARE_PY BUILD_ROOT
"""

import csv
import importlib.util
import json
import math
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


SECURE_COLUMNS = ["tamalloc-static", "tamalloc-preload", "tamalloc-secure", "tamalloc-secure-preload"]
SECURE_WORKLOAD = "small_churn"


def load_compare(path):
    spec = importlib.util.spec_from_file_location("compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def near(a, b):
    return a is not None and math.isclose(a, b, rel_tol=1e-9)


def have_secure(manifest):
    """Both variants built with the override (without it there is no tamalloc column at all)."""
    return "tamalloc-static" in manifest["allocators"] and "tamalloc-secure" in manifest["allocators"]


def check_secure_selection(cmp, manifest, errors):
    """--allocators secure means the four tamalloc columns; the default set has no secure column; a
    static column whose binary holds the other variant's archive is refused by the probe."""
    if cmp.expand_allocators("secure") != SECURE_COLUMNS:
        errors.append("--allocators secure selects %s" % cmp.expand_allocators("secure"))
    if cmp.expand_allocators("glibc,secure,tamalloc") != ["glibc"] + SECURE_COLUMNS:
        errors.append("--allocators glibc,secure,tamalloc selects %s" % cmp.expand_allocators("glibc,secure,tamalloc"))
    if any("secure" in n for n in cmp.expand_allocators(None)):
        errors.append("the default columns include a secure one: %s" % cmp.expand_allocators(None))
    columns, skipped = cmp.resolve_columns(SECURE_COLUMNS, manifest)
    if have_secure(manifest) and [c.name for c in columns] != SECURE_COLUMNS:
        errors.append("secure columns resolved to %s (skipped: %s)" % ([c.name for c in columns], skipped))
    allocs = manifest["allocators"]
    if have_secure(manifest):
        plain = allocs["tamalloc-static"]["workloads"][SECURE_WORKLOAD]
        secure = allocs["tamalloc-secure"]["workloads"][SECURE_WORKLOAD]
        if cmp.Column("tamalloc-secure", "", {}, None).secure_mismatch(plain) is None:
            errors.append("a tamalloc-secure column accepts the default build's %s" % plain)
        if cmp.Column("tamalloc-static", "", {}, None).secure_mismatch(secure) is None:
            errors.append("a tamalloc-static column accepts the secure build's %s" % secure)
        for name, binary in (("tamalloc-static", plain), ("tamalloc-secure", secure)):
            if cmp.Column(name, "", {}, None).secure_mismatch(binary) is not None:
                errors.append("a %s column refuses its own %s" % (name, binary))


def check_secure_ratios(cmp, errors):
    """secure_ratios and secure_table on medians chosen so every number is known."""
    def summ(wall, rss):
        return {"wall_s": {"median": wall}, "peak_rss_kib": {"median": rss}}
    columns = [cmp.Column(n, "", {}, None) for n in ["glibc", "tamalloc-static", "tamalloc-secure"]]
    wl = {"a": {"glibc": summ(1.0, 100), "tamalloc-static": summ(1.0, 100), "tamalloc-secure": summ(1.5, 200)},
          "b": {"glibc": summ(1.0, 100), "tamalloc-static": summ(2.0, 100), "tamalloc-secure": summ(6.0, 50)},
          "c": {"tamalloc-static": summ(1.0, 100), "tamalloc-secure": {"failed": True}}}
    mi = {"pair/64": {"tamalloc-static": {"median": 10.0}, "tamalloc-secure": {"median": 40.0}}}
    ratios = cmp.secure_ratios(wl, mi, columns)
    key = "tamalloc-secure / tamalloc-static"
    if list(ratios) != [key]:
        errors.append("secure_ratios pairs: %s (want only %s: no preload columns)" % (list(ratios), key))
        return
    r = ratios[key]
    if sorted(r["workloads"]) != ["a", "b"]:
        errors.append("secure_ratios workloads %s (want a, b: c failed)" % sorted(r["workloads"]))
    elif not (near(r["workloads"]["a"]["wall_s"], 1.5) and near(r["workloads"]["b"]["wall_s"], 3.0)
              and near(r["workloads"]["a"]["peak_rss_kib"], 2.0) and near(r["workloads"]["b"]["peak_rss_kib"], 0.5)):
        errors.append("secure_ratios per workload: %s" % r["workloads"])
    if not (near(r["geomean"]["wall_s"], math.sqrt(4.5)) and near(r["geomean"]["peak_rss_kib"], 1.0)):
        errors.append("secure_ratios geomean %s (want time %.4f, RSS 1)" % (r["geomean"], math.sqrt(4.5)))
    if not near(r["micro_geomean"], 4.0):
        errors.append("secure_ratios micro geomean %s (want 4)" % r["micro_geomean"])
    if r["over_budget"] != ["b"]:
        errors.append("secure_ratios over budget %s (want b)" % r["over_budget"])
    table = cmp.secure_table(ratios)
    for want in ["| workload | tamalloc-secure / tamalloc-static |", "| a | 1.50× · 2.00× |",
                 "| b | **3.00×** · 0.50× |", "| **geomean** | **2.12× · 1.00×** |",
                 "| micro geomean (ns/op) | 4.00× |", "| slowest (time) | b 3.00× |", "| at or over 2× time | 1 |"]:
        if want not in table.splitlines():
            errors.append("secure table lacks the line %r:\n%s" % (want, table))
    if cmp.secure_table(cmp.secure_ratios(wl, mi, columns[:2])):
        errors.append("a secure table without a secure column")


def check_secure_run(compare, build, manifest, errors):
    """A short --allocators secure run: the four columns measured, the ratios in results.json, the
    table in results.md."""
    with tempfile.TemporaryDirectory(prefix="tamalloc-bench-secure-") as out:
        wanted = [SECURE_WORKLOAD] + (["micro"] if manifest.get("have_micro") else [])
        cmd = [sys.executable, compare, "--build", build, "--out", out, "--quick", "--reps", "1",
               "--scale", "0.02", "--allocators", "secure", "--workloads", ",".join(wanted),
               "--micro-filter", "^pair/64$", "--timeout", "60"]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            errors.append("compare.py --allocators secure exited with %d" % proc.returncode)
            return
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
        if list(res["allocators"]) != SECURE_COLUMNS:
            errors.append("--allocators secure measured %s" % list(res["allocators"]))
        for sec, dflt in [("tamalloc-secure", "tamalloc-static"), ("tamalloc-secure-preload", "tamalloc-preload")]:
            r = res.get("secure", {}).get("%s / %s" % (sec, dflt))
            if not r:
                errors.append("results.json: no secure ratios for %s / %s" % (sec, dflt))
                continue
            w = r["workloads"].get(SECURE_WORKLOAD, {})
            if not (w.get("wall_s") or 0) > 0 or not (w.get("peak_rss_kib") or 0) > 0:
                errors.append("results.json: no %s ratio for %s / %s: %s" % (SECURE_WORKLOAD, sec, dflt, w))
            if not (r["geomean"].get("wall_s") or 0) > 0:
                errors.append("results.json: no geomean for %s / %s" % (sec, dflt))
            if manifest.get("have_micro") and not (r.get("micro_geomean") or 0) > 0:
                errors.append("results.json: no micro geomean for %s / %s" % (sec, dflt))
        md = open(os.path.join(out, "results.md")).read()
        if "### Secure variant against the default build" not in md or "tamalloc-secure-preload / tamalloc-preload" not in md:
            errors.append("results.md: no secure/default table")
        if "### Secure variant" not in proc.stdout:
            errors.append("stdout: no secure/default table")


def main():
    compare, build = sys.argv[1], sys.argv[2]
    with open(os.path.join(build, "benchmarks", "manifest.json")) as f:
        manifest = json.load(f)
    errors = []
    cmp = load_compare(compare)
    check_secure_ratios(cmp, errors)
    check_secure_selection(cmp, manifest, errors)
    if not errors and have_secure(manifest):
        check_secure_run(compare, build, manifest, errors)
    elif not errors:
        print("note: tamalloc-secure not built; the secure run is skipped")
    if errors:
        for e in errors:
            print("FAIL:", e)
        return 1
    print("ok: secure columns, ratios and table")
    return main_default(compare, build)


def main_default(compare, build):
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

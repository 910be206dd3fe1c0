#!/usr/bin/python3
"""Runs the allocator comparison and writes the report.

Owns: choosing the columns (allocators and how each is put in charge of malloc), running every
workload and micro-benchmark binary once per column and repetition, interleaved, as separate
processes, and summarising (medians) into a markdown table on stdout plus results.{md,csv,json,png}.
What was built, and where, comes from <build>/benchmarks/manifest.json (written by
benchmarks/meson.build). Runs under Debian's /usr/bin/python3, which has matplotlib; without
matplotlib the plot is skipped.
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Columns in the order the table shows them. The first four are peers, the last two tamalloc.
DEFAULT_ALLOCATORS = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "tamalloc-static", "tamalloc-preload"]
# Shared objects of the peers, for their -preload variants (and as a fallback when the build could not
# link them). The first one found wins.
SYSTEM_SO = {
    "jemalloc": ["libjemalloc.so.2"],
    "mimalloc": ["libmimalloc.so.2"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
}
# The secure variant (libtamalloc-secure, src/secure.c): measured beside the default build on request,
# each secure column against the default column deployed the same way (SECURE_PAIRS).
SECURE_PAIRS = [("tamalloc-secure", "tamalloc-static"), ("tamalloc-secure-preload", "tamalloc-preload")]
OPTIONAL_ALLOCATORS = [p + "-preload" for p in SYSTEM_SO] + [s for s, _ in SECURE_PAIRS]
ALIASES = {"tamalloc": ["tamalloc-static", "tamalloc-preload"],
           "secure": ["tamalloc-static", "tamalloc-preload", "tamalloc-secure", "tamalloc-secure-preload"]}
# tamalloc's preloaded columns: the manifest key of the shared object each one preloads.
TAMALLOC_PRELOAD = {"tamalloc-preload": "tamalloc_shared", "tamalloc-secure-preload": "tamalloc_secure_shared"}
# Issue 15's budget for the secure variant: under this many times the default build's wall time.
SECURE_TIME_BUDGET = 2.0
# A symbol only src/secure.c defines: in a static binary's symbol table, the secure archive was linked.
SECURE_SYMBOL = b"ta_secure_malloc"
# Ratio columns: each tamalloc variant against these bases.
RATIO_BASES = ["glibc", "jemalloc"]

QUICK_SCALE = 0.1
QUICK_MICRO_MIN_TIME = 0.01
FULL_MICRO_MIN_TIME = 0.1
METRIC_LINE = re.compile(r"^([a-z][a-z0-9_]*)=(-?[0-9]+(?:\.[0-9]+)?)$")


def note(msg):
    print(msg, file=sys.stderr, flush=True)


# --- columns -----------------------------------------------------------------------------------------

class Column:
    """One allocator as the table shows it: the binaries to run, the environment, and the method."""

    def __init__(self, name, method, workloads, micro, preload=None):
        self.name = name
        self.method = method          # how the allocator is put in charge, for the table
        self.workloads = workloads    # workload name -> binary
        self.micro = micro            # micro-benchmark binary, or None
        self.preload = preload        # shared object for LD_PRELOAD, or None

    def env(self):
        env = dict(os.environ)
        # Only this column's preload, and none of glibc's debugging knobs (meson test sets
        # MALLOC_PERTURB_, which makes glibc fill every block it hands out and frees).
        for var in ("LD_PRELOAD", "MALLOC_PERTURB_", "MALLOC_CHECK_"):
            env.pop(var, None)
        if self.preload:
            env["LD_PRELOAD"] = self.preload
        return env

    def expects(self, malloc_from, self_path):
        """Whether the probe's answer (the object defining malloc) is the allocator this column names."""
        base = os.path.basename(malloc_from)
        if self.preload:
            return os.path.realpath(malloc_from) == os.path.realpath(self.preload)
        if self.name == "glibc":
            return base.startswith("libc.so")
        if self.name in ("tamalloc-static", "tamalloc-secure"):
            return base == os.path.basename(self_path)
        return self.name in base

    def secure_mismatch(self, binary):
        """For a static tamalloc column: why `binary` holds the other variant's archive, or None. Both
        variants answer the probe with the binary itself, so the symbol table tells them apart."""
        if self.name not in ("tamalloc-static", "tamalloc-secure"):
            return None
        with open(binary, "rb") as f:
            secure = SECURE_SYMBOL in f.read()
        if secure != (self.name == "tamalloc-secure"):
            return "%s %s %s" % (os.path.basename(binary), "holds" if secure else "lacks",
                                 SECURE_SYMBOL.decode())
        return None


def lib_dirs():
    dirs = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs += ["/usr/lib/" + multiarch, "/lib/" + multiarch]
    dirs += ["/usr/lib64", "/usr/lib", "/usr/local/lib"]
    return dirs


def find_system_so(peer):
    for d in lib_dirs():
        for name in SYSTEM_SO[peer]:
            path = os.path.join(d, name)
            if os.path.exists(path):
                return path
    return None


def resolve_columns(names, manifest):
    """Returns (columns, skipped): skipped maps a name to the one-line reason it is not measured."""
    allocs = manifest["allocators"]
    glibc = allocs.get("glibc")
    columns, skipped = [], {}
    for name in names:
        if name in allocs:
            a = allocs[name]
            columns.append(Column(name, a["method"], a["workloads"], a["micro"] or None))
        elif name in TAMALLOC_PRELOAD:
            so = manifest.get(TAMALLOC_PRELOAD[name])
            if not so:
                skipped[name] = "not built (needs %s with the override; see -Doverride)" % name[:-8]
            else:
                columns.append(Column(name, "LD_PRELOAD " + os.path.basename(so), glibc["workloads"],
                                      glibc["micro"] or None, preload=so))
        elif name in ("tamalloc-static", "tamalloc-secure"):
            skipped[name] = "not built (needs %s with the override; see -Doverride)" % (
                "tamalloc_dep" if name == "tamalloc-static" else "tamalloc_secure_dep")
        elif name in SYSTEM_SO or name.endswith("-preload") and name[:-8] in SYSTEM_SO:
            peer = name[:-8] if name.endswith("-preload") else name
            so = find_system_so(peer)
            if not so:
                skipped[name] = "not installed (%s not found)" % " or ".join(SYSTEM_SO[peer])
            else:
                why = "" if name.endswith("-preload") else " (could not be linked at build time)"
                columns.append(Column(name, "LD_PRELOAD %s%s" % (os.path.basename(so), why),
                                      glibc["workloads"], glibc["micro"] or None, preload=so))
        else:
            skipped[name] = "unknown allocator"
    return columns, skipped


# --- running -----------------------------------------------------------------------------------------

class Run:
    """One process: what ran, how long, and what it printed."""

    def __init__(self, rep, kind, name, column):
        self.rep, self.kind, self.name, self.column = rep, kind, name, column
        self.wall = self.cpu = None   # seconds
        self.maxrss_kib = None        # ru_maxrss
        self.status = None            # exit code, negative for a signal; None if never started
        self.metrics = {}             # key=value lines from stdout
        self.stdout = ""
        self.error = ""               # last lines of stderr on failure

    @property
    def ok(self):
        return self.status == 0

    def row(self):
        return {"rep": self.rep, "kind": self.kind, "name": self.name, "allocator": self.column.name,
                "status": self.status, "wall_s": self.wall, "cpu_s": self.cpu,
                "peak_rss_kib": self.maxrss_kib, "metrics": self.metrics,
                **({"error": self.error} if self.error else {})}


def run_process(cmd, env, timeout, launcher=None):
    """Runs cmd to completion; returns (status, wall s, cpu s, maxrss KiB, stdout, stderr).

    With `launcher` (bench-launch from the build), the launcher forks and execs cmd and reports the
    wait4 rusage of cmd alone: started straight from this interpreter, the child's ru_maxrss would
    include the interpreter's own peak, which Linux carries across exec. Without it, os.wait4 here."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", prefix="bench-launch-") as report:
        full = [launcher, report.name] + cmd if launcher else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        # On timeout the whole session goes: the launcher and the benchmark it started.
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            # wait4, not Popen.wait: it hands back the child's own rusage (CPU time, peak RSS).
            _, wstatus, ru = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted (^C, SIGTERM): the benchmark sits in its own session, so take it down too.
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        status, cpu, maxrss = proc.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if launcher and proc.returncode == 0:
            rep = dict(kv.split("=", 1) for kv in report.read().split())
            status, wall = int(rep["status"]), float(rep["wall_s"])
            cpu, maxrss = float(rep["utime_s"]) + float(rep["stime_s"]), int(rep["maxrss_kib"])
        out.seek(0)
        err.seek(0)
        return (status, wall, cpu, maxrss, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def probe(column, binary):
    """Checks that in `binary`, run as this column runs it, malloc comes from the allocator named."""
    if not os.path.exists(binary):
        return "binary %s is missing (build first: ninja -C <build>)" % binary
    status, _, _, _, out, err = run_process([binary, "--which"], column.env(), 30)
    info = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if status != 0 or "malloc_from" not in info:
        return "probe of %s failed (exit %s): %s" % (binary, status, err.strip()[-200:])
    if not column.expects(info["malloc_from"], info.get("self", binary)):
        return "in %s malloc comes from %s" % (os.path.basename(binary), info["malloc_from"])
    return column.secure_mismatch(binary)


def workload_cmd(binary, args):
    cmd = [binary, "--scale", repr(args.scale)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return cmd


def micro_cmd(binary, args):
    cmd = [binary, "--benchmark_format=json", "--benchmark_min_time=%g" % args.micro_min_time]
    if args.micro_filter:
        cmd.append("--benchmark_filter=" + args.micro_filter)
    return cmd


def micro_results(text):
    """ns per op for each benchmark in google-benchmark's JSON: 1e9 / items_per_second when the
    benchmark counts items (summed over threads), else its time per iteration."""
    to_ns = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    res = {}
    for b in json.loads(text).get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        if b.get("items_per_second"):
            res[b["name"]] = 1e9 / b["items_per_second"]
        else:
            res[b["name"]] = b["real_time"] * to_ns.get(b.get("time_unit", "ns"), 1.0)
    return res


def execute(plan, args, raw_dir):
    runs = []
    total = len(plan)
    for i, (rep, kind, name, col) in enumerate(plan, 1):
        r = Run(rep, kind, name, col)
        if kind == "micro":
            cmd = micro_cmd(col.micro, args)
        else:
            cmd = workload_cmd(col.workloads[name], args)
        try:
            r.status, r.wall, r.cpu, r.maxrss_kib, r.stdout, err = run_process(cmd, col.env(), args.timeout,
                                                                               args.launcher)
        except OSError as e:
            r.status, err = 127, str(e)
        if r.ok and kind == "micro":
            with open(os.path.join(raw_dir, "micro-%s-rep%d.json" % (col.name, rep)), "w") as f:
                f.write(r.stdout)
            try:
                r.metrics = micro_results(r.stdout)
            except ValueError as e:
                r.status, err = 1, "unreadable google-benchmark JSON: %s" % e
        elif r.ok:
            for line in r.stdout.splitlines():
                m = METRIC_LINE.match(line.strip())
                if m:
                    r.metrics[m.group(1)] = float(m.group(2))
        if r.ok:
            note("[%d/%d] %s × %s %.2f s" % (i, total, name, col.name, r.wall))
        else:
            r.error = "\n".join(err.strip().splitlines()[-5:])
            how = "killed by signal %d" % -r.status if r.status < 0 else "exit %d" % r.status
            if r.wall and r.wall >= args.timeout and r.status == -signal.SIGKILL:
                how = "timed out after %d s" % args.timeout
            note("[%d/%d] %s × %s FAILED (%s)%s" % (i, total, name, col.name, how,
                                                   (": " + r.error.replace("\n", " | ")) if r.error else ""))
        runs.append(r)
    return runs


# --- summarising -------------------------------------------------------------------------------------

def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise(runs, columns, workloads, micro):
    """workload -> allocator -> metric -> stats, with metric one of wall_s, cpu_s, peak_rss_kib or a
    key the workload reported; micro benchmark -> allocator -> stats of ns/op. A column with any failed
    run of a workload gets {"failed": True} for it instead."""
    wl = {}
    for w in workloads:
        wl[w] = {}
        for c in columns:
            rs = [r for r in runs if r.kind == "workload" and r.name == w and r.column is c]
            if not rs:
                continue
            if not all(r.ok for r in rs):
                wl[w][c.name] = {"failed": True, "error": next(r.error for r in rs if not r.ok)}
                continue
            s = {"wall_s": stats([r.wall for r in rs]), "cpu_s": stats([r.cpu for r in rs]),
                 "peak_rss_kib": stats([r.maxrss_kib for r in rs])}
            for key in dict.fromkeys(k for r in rs for k in r.metrics):  # in the order printed
                s[key] = stats([r.metrics.get(key) for r in rs])
            wl[w][c.name] = s
    mi = {}
    if micro:
        names = []
        for r in runs:
            if r.kind == "micro" and r.ok:
                names += [n for n in r.metrics if n not in names]
        for n in names:
            mi[n] = {}
            for c in columns:
                st = stats([r.metrics.get(n) for r in runs if r.kind == "micro" and r.ok and r.column is c])
                if st:
                    mi[n][c.name] = st
    return wl, mi


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


# --- formatting --------------------------------------------------------------------------------------

def fmt_time(s):
    return "%.1f s" % s if s >= 10 else "%.2f s" % s if s >= 1 else "%.3f s" % s


def fmt_kib(k):
    if k >= 1024 * 1024:
        return "%.3g GiB" % (k / 1024 / 1024)
    if k >= 1024:
        return "%.3g MiB" % (k / 1024)
    return "%d KiB" % k


def fmt_ratio(x):
    return "—" if x is None else "%.2f×" % x if x >= 0.095 else "%.2g×" % x


def fmt_ops(x):
    return "%.3g M" % (x / 1e6) if x >= 1e6 else "%.3g k" % (x / 1e3) if x >= 1e3 else "%.3g" % x


def fmt_ns(ns):
    return "%.3g" % ns if ns < 100 else "%.0f" % ns


def ratio_pairs(columns):
    names = [c.name for c in columns]
    return [(t, b) for t in names if t.startswith("tamalloc") for b in RATIO_BASES if b in names]


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def median_of(summary, metric):
    if not summary or summary.get("failed") or metric not in summary:
        return None
    return summary[metric]["median"]


def ratio(a, b):
    return a / b if a is not None and b else None


def workload_table(wl, columns, reps):
    pairs = ratio_pairs(columns)
    base = "glibc" if any(c.name == "glibc" for c in columns) else columns[0].name
    header = ["workload"] + [c.name for c in columns] + ["%s / %s" % p for p in pairs]
    rows = [["*method*"] + ["*%s*" % c.method for c in columns] + [""] * len(pairs)]
    for w, per in wl.items():
        row = [w]
        for c in columns:
            s = per.get(c.name)
            if s is None:
                row.append("")
            elif s.get("failed"):
                row.append("**FAIL**")
            else:
                row.append("%s · %s" % (fmt_time(s["wall_s"]["median"]), fmt_kib(s["peak_rss_kib"]["median"])))
        for t, b in pairs:
            rt = ratio(median_of(per.get(t), "wall_s"), median_of(per.get(b), "wall_s"))
            rm = ratio(median_of(per.get(t), "peak_rss_kib"), median_of(per.get(b), "peak_rss_kib"))
            row.append("%s · %s" % (fmt_ratio(rt), fmt_ratio(rm)) if rt is not None else "—")
        rows.append(row)
    # Geometric means of ratios, over the workloads where both sides have a result.
    def gm(a, b, metric):
        return geomean([ratio(median_of(per.get(a), metric), median_of(per.get(b), metric)) for per in wl.values()])
    row = ["**geomean vs %s**" % base]
    for c in columns:
        row.append("%s · %s" % (fmt_ratio(gm(c.name, base, "wall_s")), fmt_ratio(gm(c.name, base, "peak_rss_kib"))))
    for t, b in pairs:
        row.append("**%s · %s**" % (fmt_ratio(gm(t, b, "wall_s")), fmt_ratio(gm(t, b, "peak_rss_kib"))))
    rows.append(row)
    title = ("### Whole-program workloads — median wall time · peak RSS over %d run%s; "
             "ratios are time · RSS, below 1 means tamalloc is better" % (reps, "" if reps == 1 else "s"))
    return title + "\n\n" + md_table(header, rows)


def reported_keys(per, suffix):
    """The keys ending in `suffix` that a workload printed, in the order printed (peak_rss_kib is the
    launcher's, shown in the first table)."""
    keys = []
    for s in per.values():
        if not s.get("failed"):
            keys += [k for k in s if k.endswith(suffix) and k != "peak_rss_kib" and k not in keys]
    return keys


def reported_rows(wl, columns, suffix, fmt):
    """One row per (workload, key ending in suffix): the medians, then the tamalloc ratio columns."""
    pairs = ratio_pairs(columns)
    rows = []
    for w, per in wl.items():
        for k in reported_keys(per, suffix):
            row = ["%s: %s" % (w, k[:-len(suffix)])]
            for c in columns:
                v = median_of(per.get(c.name), k)
                row.append("" if v is None else fmt(v))
            for t, b in pairs:
                row.append(fmt_ratio(ratio(median_of(per.get(t), k), median_of(per.get(b), k))))
            rows.append(row)
    return rows


def reported_table(wl, columns):
    rows = reported_rows(wl, columns, "_kib", fmt_kib)
    if not rows:
        return ""
    header = ["resident set at"] + [c.name for c in columns] + ["%s / %s" % p for p in ratio_pairs(columns)]
    return ("### Memory reported by the workloads (RSS from /proc/self/statm at each point, median)\n\n"
            + md_table(header, rows))


def throughput_table(wl, columns):
    rows = reported_rows(wl, columns, "_ops_per_s", fmt_ops)
    if not rows:
        return ""
    header = ["throughput (ops/s)"] + [c.name for c in columns] + ["%s / %s" % p for p in ratio_pairs(columns)]
    return ("### Throughput reported by the workloads — operations per second, median; "
            "here above 1 means tamalloc is better\n\n" + md_table(header, rows))


def micro_table(mi, columns, reps, min_time):
    if not mi:
        return ""
    pairs = ratio_pairs(columns)
    header = ["benchmark (ns/op)"] + [c.name for c in columns] + ["%s / %s" % p for p in pairs]
    rows = []
    for n, per in mi.items():
        row = [n] + [fmt_ns(per[c.name]["median"]) if c.name in per else "" for c in columns]
        for t, b in pairs:
            row.append(fmt_ratio(ratio(per[t]["median"] if t in per else None, per[b]["median"] if b in per else None)))
        rows.append(row)
    base = "glibc" if any(c.name == "glibc" for c in columns) else columns[0].name
    row = ["**geomean vs %s**" % base]
    for c in columns:
        row.append(fmt_ratio(geomean([ratio(per.get(c.name, {}).get("median"), per.get(base, {}).get("median"))
                                      for per in mi.values()])))
    for t, b in pairs:
        row.append("**%s**" % fmt_ratio(geomean([ratio(per.get(t, {}).get("median"), per.get(b, {}).get("median"))
                                                for per in mi.values()])))
    rows.append(row)
    title = ("### Micro benchmarks — median ns per op over %d run%s (google-benchmark, min time %g s); "
             "one op = one allocation and its free, summed over threads" % (reps, "" if reps == 1 else "s", min_time))
    return title + "\n\n" + md_table(header, rows)


def secure_ratios(wl, mi, columns):
    """The secure variant's cost: for each pair of SECURE_PAIRS whose two columns were measured,
    {"secure", "default", "workloads": {w: {"wall_s", "peak_rss_kib"}}, "geomean": {same}, "micro":
    {benchmark: ns ratio}, "micro_geomean", "over_budget": [workloads at SECURE_TIME_BUDGET or more]}.
    A workload where either side failed is left out of its pair (and so out of the geomeans)."""
    names = [c.name for c in columns]
    out = {}
    for sec, dflt in SECURE_PAIRS:
        if sec not in names or dflt not in names:
            continue
        per_w = {}
        for w, per in wl.items():
            r = {m: ratio(median_of(per.get(sec), m), median_of(per.get(dflt), m)) for m in ("wall_s", "peak_rss_kib")}
            if r["wall_s"] is not None:
                per_w[w] = r
        per_m = {}
        for n, per in mi.items():
            r = ratio(per.get(sec, {}).get("median"), per.get(dflt, {}).get("median"))
            if r is not None:
                per_m[n] = r
        out["%s / %s" % (sec, dflt)] = {
            "secure": sec, "default": dflt, "workloads": per_w,
            "geomean": {m: geomean([r[m] for r in per_w.values()]) for m in ("wall_s", "peak_rss_kib")},
            "micro": per_m, "micro_geomean": geomean(list(per_m.values())),
            "over_budget": [w for w, r in per_w.items() if r["wall_s"] >= SECURE_TIME_BUDGET],
        }
    return out


def secure_table(ratios):
    """The secure/default table: one row per workload, one column per pair, `time · RSS`; a time at or
    over the budget in bold; then the geomeans (workloads, and micro ns/op when measured) and the worst
    workload."""
    if not ratios:
        return ""
    pairs = list(ratios.values())
    workloads = list(dict.fromkeys(w for p in pairs for w in p["workloads"]))
    def cell(r):
        if r is None:
            return "—"
        t = fmt_ratio(r["wall_s"])
        return "%s · %s" % ("**%s**" % t if r["wall_s"] >= SECURE_TIME_BUDGET else t, fmt_ratio(r["peak_rss_kib"]))
    rows = [[w] + [cell(p["workloads"].get(w)) for p in pairs] for w in workloads]
    rows.append(["**geomean**"] + ["**%s · %s**" % (fmt_ratio(p["geomean"]["wall_s"]), fmt_ratio(p["geomean"]["peak_rss_kib"]))
                                   for p in pairs])
    if any(p["micro"] for p in pairs):
        rows.append(["micro geomean (ns/op)"] + [fmt_ratio(p["micro_geomean"]) for p in pairs])
    worst = []
    for p in pairs:
        w = max(p["workloads"], key=lambda k: p["workloads"][k]["wall_s"], default=None)
        worst.append("—" if w is None else "%s %s" % (w, fmt_ratio(p["workloads"][w]["wall_s"])))
    rows.append(["slowest (time)"] + worst)
    rows.append(["at or over %g× time" % SECURE_TIME_BUDGET] + [str(len(p["over_budget"])) for p in pairs])
    header = ["workload"] + ["%s / %s" % (p["secure"], p["default"]) for p in pairs]
    return ("### Secure variant against the default build — median wall time · peak RSS ratios; "
            "the budget is under %g× time (bold: at or over it)\n\n" % SECURE_TIME_BUDGET + md_table(header, rows))


# --- files -------------------------------------------------------------------------------------------

def write_csv(path, wl, mi, columns):
    method = {c.name: c.method for c in columns}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "name", "allocator", "method", "metric", "unit", "median", "min", "max", "n"])
        for name, per in wl.items():
            for alloc, s in per.items():
                if s.get("failed"):
                    w.writerow(["workload", name, alloc, method[alloc], "failed", "", "", "", "", ""])
                    continue
                for metric, st in s.items():
                    unit = ("ops/s" if metric.endswith("_ops_per_s") else "s" if metric.endswith("_s")
                            else "KiB" if metric.endswith("_kib") else "")
                    w.writerow(["workload", name, alloc, method[alloc], metric, unit,
                                "%.6g" % st["median"], "%.6g" % st["min"], "%.6g" % st["max"], st["n"]])
        for name, per in mi.items():
            for alloc, st in per.items():
                w.writerow(["micro", name, alloc, method[alloc], "ns_per_op", "ns",
                            "%.6g" % st["median"], "%.6g" % st["min"], "%.6g" % st["max"], st["n"]])


# Bar colours: the peers muted, tamalloc's columns strong, so tamalloc stands out in every group.
PEER_COLOURS = {"glibc": "#a0a0a0", "jemalloc": "#8fb0d0", "mimalloc": "#a8c8a0", "tcmalloc": "#d0b0c8"}
TAMALLOC_COLOURS = {"tamalloc-static": "#d62728", "tamalloc-preload": "#ff7f0e",
                    "tamalloc-secure": "#7b1fa2", "tamalloc-secure-preload": "#c2185b"}


def natural_key(s):
    """Sorts pair/8 before pair/64 before pair/1024."""
    return [int(t) if t.isdigit() else t for t in re.split(r"([0-9]+)", s)]


def plot_figures(wl, mi, columns, base):
    """The figures: (file, title, rows, absolute) with rows [(label, {column: value or "FAIL"})] sorted by
    workload (a workload's points in the order it printed them); absolute figures show values (KiB), the
    others each column's ratio to base."""
    def wl_rows(keys_of):
        rows = []
        for w, per in sorted(wl.items(), key=lambda kv: natural_key(kv[0])):
            for label, key in keys_of(w, per):
                vals = {}
                for c in columns:
                    s = per.get(c.name)
                    if s is not None and s.get("failed"):
                        vals[c.name] = "FAIL"
                    elif median_of(s, key) is not None:
                        vals[c.name] = median_of(s, key)
                rows.append((label, vals))
        return rows
    figures = [
        ("results-time.png", "Wall time, ratio to %s (left of 1× = faster)" % base,
         wl_rows(lambda w, per: [(w, "wall_s")]), False),
        ("results-peak-rss.png", "Peak RSS, ratio to %s (left of 1× = smaller)" % base,
         wl_rows(lambda w, per: [(w, "peak_rss_kib")]), False),
        ("results-memory.png", "Resident set at the points the workloads report (log; ratio to %s on "
         "tamalloc's bars)" % base,
         wl_rows(lambda w, per: [("%s: %s" % (w, k[:-4].replace("rss_", "")), k) for k in reported_keys(per, "_kib")]),
         True),
        ("results-throughput.png", "Throughput (ops/s), ratio to %s (right of 1× = faster)" % base,
         wl_rows(lambda w, per: [("%s: %s" % (w, k[:-10]), k) for k in reported_keys(per, "_ops_per_s")]), False),
    ]
    if mi:
        # google-benchmark's "/real_time" says how the benchmark is timed, not which one it is.
        rows = [(n.replace("/real_time", ""), {a: st["median"] for a, st in per.items()}) for n, per in mi.items()]
        figures.append(("results-micro.png", "Micro benchmarks: ns per op, ratio to %s (left of 1× = faster)" % base,
                        sorted(rows, key=lambda r: natural_key(r[0])), False))
    return [f for f in figures if f[2]]


def draw_bars(plt, path, title, rows, names, base, absolute):
    """Horizontal bars, one group per row, one bar per column; on a log axis, from 1× (or from below
    the smallest value) to the value, with the ratio (or the value) printed at the end of each bar."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    shown = names if absolute else [n for n in names if n != base]
    bar = 0.13                          # inches per bar: 13 pixels, room for a 7.5 pt label
    group = bar * len(shown) + 0.2      # inches per row, gap included
    label_in = 0.075 * max(len(r[0]) for r in rows) + 0.3
    width = 12.0
    height = 1.3 + group * len(rows)
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=label_in / width, right=0.98, top=1 - 1.0 / height, bottom=0.35 / height)
    if absolute:
        values = [v for _, vals in rows for v in vals.values() if v != "FAIL" and v > 0]
    else:  # the ratios, and 1 itself: the axis always shows the base line
        values = [1.0] + [v / vals[base] for _, vals in rows for a, v in vals.items()
                          if a != base and v != "FAIL" and vals.get(base) not in (None, "FAIL") and v > 0]
    lo, hi = min(values, default=1.0), max(values, default=1.0)
    floor = lo / 1.5 if absolute else 1.0
    left = floor / 1.2 if absolute else lo / 1.35
    # Room right of the longest bar for its label, about a sixth of the axis (the axis is logarithmic).
    right = hi * (hi / left) ** 0.15 * 1.1
    step = bar / group                  # one bar in units of rows
    for i, (label, vals) in enumerate(rows):
        b = vals.get(base)
        for j, a in enumerate(shown):
            y = i - (len(shown) - 1) / 2 * step + j * step
            v = vals.get(a)
            tam = a in TAMALLOC_COLOURS
            colour = TAMALLOC_COLOURS.get(a) or PEER_COLOURS.get(a.replace("-preload", ""), "#c0c0c0")
            if v is None or v == "FAIL" or v <= 0 or not absolute and (b in (None, "FAIL") or b <= 0):
                ax.text(floor, y, " FAIL" if v == "FAIL" else " —", va="center", fontsize=8, color="#b00000")
                continue
            x = v if absolute else v / b
            ax.barh(y, x - floor, left=floor, height=step * 0.9, color=colour,
                    edgecolor="black" if tam else "none", linewidth=0.6)
            if absolute:
                text = fmt_kib(v) + (" (%s)" % fmt_ratio(ratio(v, b)) if tam and b not in (None, "FAIL") else "")
            else:
                text = fmt_ratio(x)
            ax.text(x * (1.02 if x >= floor else 0.98), y, text, va="center", ha="left" if x >= floor else "right",
                    fontsize=7.5, fontweight="bold" if tam else "normal")
        if i:
            ax.axhline(i - 0.5, color="#e0e0e0", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_xlim(left, right)
    if absolute:  # powers of 4 KiB: 1 MiB, 4 MiB, 16 MiB, ...
        ticks = [4.0 ** k for k in range(0, 16) if left <= 4.0 ** k <= right]
    else:
        ticks = [m * 10.0 ** k for k in range(-3, 4) for m in (1, 2, 5) if left <= m * 10.0 ** k <= right]
        ax.axvline(1.0, color="black", linewidth=0.8)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: fmt_kib(x) if absolute else "1× = %s" % base if x == 1 else "%g×" % x))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows], fontsize=9)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", top=True, labeltop=True)  # the scale at both ends of a tall figure
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.set_title(title, fontsize=11, loc="left", pad=22)
    handles = [plt.Rectangle((0, 0), 1, 1, color=TAMALLOC_COLOURS.get(a) or PEER_COLOURS.get(a.replace("-preload", ""),
                                                                                          "#c0c0c0")) for a in shown]
    fig.legend(handles, shown, ncol=len(shown), fontsize=9, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.05 / height),
               frameon=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(out, wl, mi, columns):
    """Writes one PNG per figure into `out`; returns their names (none without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        note("compare: matplotlib not available to %s; the PNGs are skipped" % sys.executable)
        return []
    base = "glibc" if any(c.name == "glibc" for c in columns) else columns[0].name
    names = [c.name for c in columns]
    written = []
    for name, title, rows, absolute in plot_figures(wl, mi, columns, base):
        draw_bars(plt, os.path.join(out, name), title, rows, names, base, absolute)
        written.append(name)
    return written


# --- main --------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="compare-allocators",
        description="Compare tamalloc with glibc, jemalloc, mimalloc and tcmalloc on the workloads and "
                    "micro benchmarks of benchmarks/. Runs are interleaved across allocators; medians "
                    "are reported.")
    p.add_argument("--build", default=os.path.join(REPO, "build", "compare"),
                   help="meson build directory holding benchmarks/manifest.json (default build/compare)")
    p.add_argument("--allocators", help="comma-separated columns (default %s; also %s; 'tamalloc' = both "
                   "tamalloc columns; 'secure' = %s, with a secure/default ratio table)"
                   % (",".join(DEFAULT_ALLOCATORS), ",".join(OPTIONAL_ALLOCATORS), ",".join(ALIASES["secure"])))
    p.add_argument("--workloads", help="comma-separated workloads, 'micro' for the micro benchmarks "
                   "(default: all workloads and micro)")
    p.add_argument("--reps", type=int, default=3, help="runs of each workload per allocator (default 3)")
    p.add_argument("--threads", type=int, help="threads for the multithreaded workloads (default: each "
                   "workload's own, 4)")
    p.add_argument("--quick", action="store_true", help="scale the workloads by %g and shorten the micro "
                   "benchmarks: the whole suite in about a minute and a half on 2 cores" % QUICK_SCALE)
    p.add_argument("--scale", type=float, help="workload size multiplier (default 1, %g with --quick)" % QUICK_SCALE)
    p.add_argument("--micro-filter", help="regex of micro benchmarks to run (--benchmark_filter)")
    p.add_argument("--micro-min-time", type=float, help="google-benchmark min time per benchmark, s "
                   "(default %g, %g with --quick)" % (FULL_MICRO_MIN_TIME, QUICK_MICRO_MIN_TIME))
    p.add_argument("--timeout", type=int, default=600, help="seconds before a run is killed (default 600)")
    p.add_argument("--out", default=os.path.join(REPO, "results"), help="output directory (default results/)")
    p.add_argument("--list", action="store_true", help="list the columns and workloads, then exit")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else 1.0
    if args.micro_min_time is None:
        args.micro_min_time = QUICK_MICRO_MIN_TIME if args.quick else FULL_MICRO_MIN_TIME
    return args


def split_list(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def expand_allocators(spec):
    """The column names --allocators asks for (None: the default set), aliases expanded, each once, in
    the order given."""
    names = []
    for n in split_list(spec) if spec else DEFAULT_ALLOCATORS:
        for m in ALIASES.get(n, [n]):
            if m not in names:
                names.append(m)
    return names


def main(argv):
    args = parse_args(argv)
    # SIGTERM unwinds like ^C, so run_process can stop the benchmark it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    manifest_path = os.path.join(args.build, "benchmarks", "manifest.json")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except OSError:
        note("compare: %s not found; configure and build first (ci/compare-allocators does both)" % manifest_path)
        return 2

    names = expand_allocators(args.allocators)
    known = set(DEFAULT_ALLOCATORS) | set(OPTIONAL_ALLOCATORS) | set(manifest["allocators"])
    unknown = [n for n in names if n not in known]
    if unknown:
        note("compare: unknown allocator(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(known))))
        return 2
    all_workloads = manifest["workloads"] + ["micro"]
    wanted = split_list(args.workloads) if args.workloads else all_workloads
    unknown = [w for w in wanted if w not in all_workloads]
    if unknown:
        note("compare: unknown workload(s) %s; known: %s" % (", ".join(unknown), ", ".join(all_workloads)))
        return 2
    workloads = [w for w in manifest["workloads"] if w in wanted]
    micro = "micro" in wanted
    if micro and not manifest.get("have_micro"):
        note("micro: skipped (google-benchmark was not found when the build was configured)")
        micro = False

    columns, skipped = resolve_columns(names, manifest)
    if args.list:
        for c in columns:
            print("%-18s %s" % (c.name, c.method))
        for n, why in skipped.items():
            print("%-18s skipped: %s" % (n, why))
        print("workloads: " + ", ".join(all_workloads))
        return 0
    for n, why in skipped.items():
        note("%s: skipped, %s" % (n, why))

    # Every binary must run the allocator its column names, or the comparison is meaningless.
    broken = False
    for c in list(columns):
        bins = [c.workloads[w] for w in workloads] + ([c.micro] if micro and c.micro else [])
        problem = next((p for p in (probe(c, b) for b in bins) if p), None)
        if problem:
            note("%s: skipped, %s" % (c.name, problem))
            skipped[c.name] = problem
            columns.remove(c)
            broken = True
    if not columns:
        note("compare: no allocator left to measure")
        return 1

    args.launcher = manifest.get("launch")
    if not args.launcher or not os.access(args.launcher, os.X_OK):
        note("compare: bench-launch not built; peak RSS will include this interpreter's (~15 MiB)")
        args.launcher = None

    os.makedirs(args.out, exist_ok=True)
    raw_dir = os.path.join(args.out, "raw")
    if os.path.isdir(raw_dir):
        shutil.rmtree(raw_dir)
    os.makedirs(raw_dir)

    # Interleaved: within a repetition every allocator runs a workload back to back (A B C, A B C, ...),
    # so slow drift of the machine hits all columns alike.
    plan = []
    for rep in range(1, args.reps + 1):
        for w in workloads:
            plan += [(rep, "workload", w, c) for c in columns]
        if micro:
            plan += [(rep, "micro", "micro", c) for c in columns if c.micro]
    started = time.time()
    runs = execute(plan, args, raw_dir)
    elapsed = time.time() - started

    wl, mi = summarise(runs, columns, workloads, micro)
    secure = secure_ratios(wl, mi, columns)
    report = [workload_table(wl, columns, args.reps) if workloads else "",
              reported_table(wl, columns),
              throughput_table(wl, columns),
              micro_table(mi, columns, args.reps, args.micro_min_time),
              secure_table(secure)]
    report = "\n\n".join(r for r in report if r) + "\n"
    print(report)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "cpu_model": cpu_model(), "command": sys.argv, "build": os.path.abspath(args.build),
        "buildtype": manifest.get("buildtype"), "b_ndebug": manifest.get("b_ndebug"),
        "compiler": manifest.get("compiler"), "reps": args.reps, "scale": args.scale, "quick": args.quick,
        "threads": args.threads, "micro_min_time": args.micro_min_time, "micro_filter": args.micro_filter,
        "elapsed_s": round(elapsed, 1),
    }
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(report)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta,
                   "allocators": {c.name: {"method": c.method, "preload": c.preload} for c in columns},
                   "skipped": skipped, "workloads": wl, "micro": mi, "secure": secure,
                   "runs": [r.row() for r in runs]}, f, indent=1)
        f.write("\n")
    write_csv(os.path.join(args.out, "results.csv"), wl, mi, columns)
    files = ["results.md", "results.csv", "results.json"]
    for old in os.listdir(args.out):  # figures of an earlier run that this one has no data for
        if old.startswith("results") and old.endswith(".png"):
            os.remove(os.path.join(args.out, old))
    files += write_plots(args.out, wl, mi, columns)
    failed = [r for r in runs if not r.ok]
    note("compare: %d runs in %.0f s; %s written to %s (raw google-benchmark JSON in raw/)"
         % (len(runs), elapsed, ", ".join(files), os.path.abspath(args.out)))
    if failed:
        note("compare: %d run(s) FAILED: %s" % (len(failed), ", ".join(sorted({"%s × %s" % (r.name, r.column.name)
                                                                             for r in failed}))))
    return 1 if failed or broken else 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

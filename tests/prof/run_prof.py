#!/usr/bin/env python3
"""Drives the prof suite's programs with TAMALLOC_PROF_* set and reads their profiles with the real
google-pprof (Debian's google-perftools, installed by ci/bootstrap).
  run_prof.py pprof EXE exit|mid|shlib   the held functions ranked, estimated within tolerance
  run_prof.py leaks EXE                  the leak report's first line names hold_big, ~64 MiB
  run_prof.py interval EXE               numbered dumps as the live heap grows
  run_prof.py env EXE                    malformed values warn and keep the defaults"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

MIB = 1024.0 * 1024.0


def fail(msg):
    print("run_prof: FAIL: " + msg)
    sys.exit(1)


def run(args, env, tmp):
    e = dict(os.environ)
    e.update(env)
    p = subprocess.run(args, env=e, cwd=tmp, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        fail("%s exited %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def pprof_text(exe, profile):
    p = subprocess.run(["google-pprof", "--text", "--inuse_space", exe, profile],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        fail("google-pprof failed\n" + p.stderr)
    print(p.stdout)
    rows = []
    # "    61.2  90.4%  90.4%     61.2  90.4% hold_big": flat MB (pprof's MB are MiB) and the name
    for line in p.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)\s+[\d.]+%\s+[\d.]+%\s+[\d.]+\s+[\d.]+%\s+(\S+)", line)
        if m:
            rows.append((m.group(2), float(m.group(1))))
    return rows


def near(rows, name, want, tol):
    got = dict(rows).get(name)
    if got is None:
        fail("%s is not in the profile" % name)
    if abs(got - want) > tol * want:
        fail("%s holds %.1f MiB by the profile, want %.1f within %d%%" % (name, got, want, tol * 100))


def cmd_pprof(exe, mode, tmp):
    env = {"TAMALLOC_PROF": "1"}
    if mode == "mid":
        run([exe, "mid", os.path.join(tmp, "mid.heap")], env, tmp)
        profile = os.path.join(tmp, "mid.heap")
    else:
        env["TAMALLOC_PROF_DUMP"] = os.path.join(tmp, "exit.%p.heap")
        p = run([exe, mode], env, tmp)
        found = glob.glob(os.path.join(tmp, "exit.*.heap"))
        if len(found) != 1 or not re.search(r"exit\.\d+\.heap$", found[0]):
            fail("want one exit.PID.heap, found %s" % found)
        profile = found[0]
    rows = pprof_text(exe, profile)
    if not rows or rows[0][0] != "hold_big":
        fail("hold_big is not on top: %s" % rows[:3])
    near(rows, "hold_big", 64, 0.25)
    near(rows, "hold_small", 8, 0.5)
    if mode == "shlib":
        near(rows, "shlib_hold", 16, 0.5)


def cmd_leaks(exe, tmp):
    p = run([exe, "exit"], {"TAMALLOC_PROF": "1", "TAMALLOC_PROF_LEAKS": "1"}, tmp)
    print(p.stderr)
    first = p.stderr.splitlines()[0] if p.stderr else ""
    m = re.match(r"tamalloc: leak: ~([\d.]+) MiB in (\d+) blocks from hold_big\+0x[0-9a-f]+ \(.*prof_hold\)$", first)
    if not m:
        fail("the first leak line is %r" % first)
    if abs(float(m.group(1)) - 64) > 16 or abs(int(m.group(2)) - 16384) > 4096:
        fail("want ~64 MiB in ~16384 blocks: %r" % first)
    if not re.search(r"^tamalloc: leak:     called from main\+", p.stderr, re.M):
        fail("main is not among the frames")


def cmd_interval(exe, tmp):
    env = {"TAMALLOC_PROF": "1", "TAMALLOC_PROF_INTERVAL": "16m",
           "TAMALLOC_PROF_DUMP": os.path.join(tmp, "i.%p.heap")}
    run([exe, "exit"], env, tmp)
    numbered = sorted(glob.glob(os.path.join(tmp, "i.*.heap.*")))
    # 72 MiB live at the peak: a dump at each 16 MiB of growth, 4 of them (give or take sampling)
    if not 3 <= len(numbered) <= 5:
        fail("want 3..5 numbered dumps, found %s" % numbered)
    for f in numbered:
        with open(f) as fh:
            if not fh.readline().startswith("heap profile: "):
                fail(f + " is not a heap profile")


def cmd_env(exe, tmp):
    env = {"TAMALLOC_PROF": "2", "TAMALLOC_PROF_SAMPLE": "12q", "TAMALLOC_PROF_INTERVAL": "-5",
           "TAMALLOC_PROF_LEAKS": "yes"}
    p = run([exe, "env", os.path.join(tmp, "env.heap")], env, tmp)
    for name, default in [("TAMALLOC_PROF", 0), ("TAMALLOC_PROF_SAMPLE", 524288),
                          ("TAMALLOC_PROF_INTERVAL", 0), ("TAMALLOC_PROF_LEAKS", 0)]:
        if not re.search(r"^tamalloc: warning: %s=\S+ is malformed; keeping the default %d$" % (name, default),
                         p.stderr, re.M):
            fail("no warning for %s in %r" % (name, p.stderr))


def main():
    if shutil.which("google-pprof") is None and sys.argv[1] == "pprof":
        print("google-pprof is not installed (ci/bootstrap installs google-perftools)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="ta-prof-")
    try:
        cmd, exe = sys.argv[1], os.path.abspath(sys.argv[2])
        if cmd == "pprof":
            cmd_pprof(exe, sys.argv[3], tmp)
        elif cmd == "leaks":
            cmd_leaks(exe, tmp)
        elif cmd == "interval":
            cmd_interval(exe, tmp)
        elif cmd == "env":
            cmd_env(exe, tmp)
        else:
            fail("unknown command " + cmd)
    finally:
        shutil.rmtree(tmp)


main()

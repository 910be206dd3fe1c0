#!/usr/bin/env python3
"""Runs one real, unmodified program twice, with and without tamalloc preloaded, and checks that
both runs exit 0 with identical output (and identical output files where the program writes some).

That tamalloc was really in charge is checked twice: once by the generic probe (a shell that finds
libtamalloc in its own /proc/self/maps under LD_PRELOAD), and inside every preloaded run itself:
TAMALLOC_TOP_PAD is set to a malformed value, which tamalloc reports on stderr in one line when it
initialises (its first allocation) and otherwise ignores, so a run whose stderr lacks that line never
allocated through tamalloc. redis-server, which stays up, is also checked through /proc/PID/maps.

Usage: run_program.py --lib PATH/libtamalloc.so PROGRAM
PROGRAM: probe python sort gcc sqlite3 git xz redis. Exit 0 pass, 1 fail, 77 skip (not installed)."""
import argparse
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
PROBE_VALUE = "ta-preload-probe"  # malformed on purpose: see the module docstring
# Every test bounds its work by count (inputs of fixed size, a fixed number of requests), never by
# time; the timeouts only catch a hang, so they are many times what a run takes on an idle machine
# (a few seconds to half a minute): a slow or busy machine must never turn a pass into a failure.
TIMEOUT = 600  # seconds, for any one program run
SERVER_TIMEOUT = 60  # seconds for redis-server to answer PING, or to stop on SIGTERM


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            log(f"SKIP: {t} is not installed")
            sys.exit(SKIP)


def base_env(workdir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "TAMALLOC_", "MALLOC_"))}
    env.update(LC_ALL="C", LANG="C", TZ="UTC", HOME=workdir, PYTHONHASHSEED="0")
    return env


def preload_env(env, lib):
    e = dict(env)
    e["LD_PRELOAD"] = lib
    e["TAMALLOC_TOP_PAD"] = PROBE_VALUE
    return e


def run(cmd, env, cwd, stdin=None, stdout_path=None, timeout=TIMEOUT):
    """Runs cmd; returns (stdout bytes or b"" when sent to a file, stderr text). Raises on failure."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, input=stdin, stdout=out, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"{cmd[0]}: no result within {timeout} s")
    finally:
        if stdout_path:
            out.close()
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit status {p.returncode}"
        raise Failure(f"{' '.join(cmd)}: {how}\n--- stderr ---\n{err[-3000:]}")
    return (p.stdout or b""), err


def check_probe(err, what):
    """The preloaded run's stderr must show that tamalloc initialised in it."""
    lines = [l for l in err.splitlines() if l.startswith("tamalloc") and PROBE_VALUE in l]
    if not lines:
        raise Failure(f"{what}: no sign of tamalloc in the preloaded run (stderr: {err[-1000:]!r})")
    return len(lines)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compare(name, cmd, env, lib, cwd, stdin=None, files=(), to_file=False, setup=None):
    """Runs cmd in cwd without and with tamalloc (setup() first, each time, when given); compares
    stdout and the named output files."""
    results = []
    for label, e in (("glibc", env), ("tamalloc", preload_env(env, lib))):
        if setup:
            setup()
        t0 = time.monotonic()
        out_path = os.path.join(cwd, f"stdout-{label}") if to_file else None
        out, err = run(cmd, e, cwd, stdin=stdin, stdout_path=out_path)
        dt = time.monotonic() - t0
        digest = sha256_file(out_path) if to_file else hashlib.sha256(out).hexdigest()
        outputs = {f: sha256_file(os.path.join(cwd, f)) for f in files}
        probes = check_probe(err, name) if label == "tamalloc" else 0
        extra = f", {probes} process(es) showed tamalloc" if probes else ""
        log(f"{name} [{label}]: {dt:.1f} s, stdout sha256 {digest[:16]}{extra}")
        results.append((digest, outputs, out))
    (d0, f0, o0), (d1, f1, o1) = results
    if d0 != d1:
        detail = ""
        if not to_file:
            detail = f"\n--- glibc ---\n{o0[-1500:].decode(errors='replace')}\n--- tamalloc ---\n" \
                     f"{o1[-1500:].decode(errors='replace')}"
        raise Failure(f"{name}: output differs with tamalloc{detail}")
    if f0 != f1:
        raise Failure(f"{name}: output files differ with tamalloc: {f0} vs {f1}")
    return o0


# ---- inputs ----

def make_words(path, mbytes, seed=5):
    """A deterministic, compressible text file of about mbytes MB (few words, small numbers)."""
    r = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "malloc", "free", "arena", "page", "segment", "brk", "mmap"]
    target = mbytes * 1000 * 1000
    written = 0
    with open(path, "w") as f:
        while written < target:
            chunk = "".join(" ".join(r.choice(words) for _ in range(8)) + f" {r.randrange(1000)}\n"
                            for _ in range(10000))
            f.write(chunk)
            written += len(chunk)


def make_text(path, mbytes, seed=1):
    """A deterministic text file of about mbytes MB: hex keys, words and numbers."""
    r = random.Random(seed)
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 12)))
             for _ in range(5000)]
    target = mbytes * 1000 * 1000
    written = 0
    with open(path, "w") as f:
        while written < target:
            lines = [f"{r.getrandbits(64):016x} {r.choice(words)} {r.randint(0, 10**9)} {r.choice(words)}\n"
                     for _ in range(10000)]
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)


PYTHON_SCRIPT = r'''
import hashlib, random, threading, collections

def work(seed, out):
    r = random.Random(seed)
    h = hashlib.sha256()
    for rnd in range(3):
        d = {}
        for i in range(15000):
            k = "k%x-%d" % (r.getrandbits(40), i % 97)
            d[k] = [i, str(i) * (i % 7), (k, i * 3.5)]
        items = sorted(d.items())[::50]
        text = "|".join("%s=%r" % kv for kv in items)
        h.update(text.encode())
        big = [bytearray(r.randrange(1, 300000)) for _ in range(20)]
        h.update(str(sum(len(b) for b in big)).encode())
        c = collections.Counter(w[:3] for w in d)
        h.update(repr(sorted(c.most_common(20))).encode())
    out[seed] = h.hexdigest()

out = {}
threads = [threading.Thread(target=work, args=(s, out)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
for s in sorted(out): print(s, out[s])
'''


def make_c_file(path, functions=2000):
    """A C file of many small functions with a loop and a branch each (about 13 s of gcc -O2)."""
    with open(path, "w") as f:
        f.write("struct s { int a[8]; long b; };\n")
        for i in range(functions):
            f.write(f"long f{i}(long x, const struct s *p) {{ long acc = {i};\n"
                    f"  for (int k = 0; k < {i % 5 + 2}; k++) acc += p->a[k] * (x ^ k);\n"
                    f"  return (x & 1) ? acc ^ {i * 7} : acc * 31 + p->b; }}\n")


SQL = """
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
  INSERT INTO t SELECT x, printf('%08x', (x * 2654435761) % 4294967296), (x * 7919) % 100003,
                       substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26) || x FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_v ON t(v);
SELECT count(*), sum(v), min(k), max(k) FROM t;
SELECT v % 10, count(*), sum(length(note)) FROM t GROUP BY v % 10 ORDER BY 1;
SELECT id, k FROM t WHERE k BETWEEN '10000000' AND '10100000' ORDER BY k LIMIT 20;
SELECT count(*) FROM t WHERE v BETWEEN 500 AND 5000;
SELECT a.id, b.id FROM t a JOIN t b ON a.v = b.v AND a.id < b.id ORDER BY a.id LIMIT 10;
UPDATE t SET note = note || note WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(note)) FROM t;
"""


# ---- programs ----

def prog_probe(lib, work):
    need("sh", "grep")
    env = base_env(work)
    out, _ = run(["sh", "-c", "grep -c libtamalloc /proc/$$/maps"], preload_env(env, lib), work)
    n = int(out.decode().strip() or 0)
    if n < 1:
        raise Failure("LD_PRELOAD did not map libtamalloc into a shell")
    log(f"probe: libtamalloc mapped {n} time(s) in a preloaded shell")


def prog_python(lib, work):
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    if py is None:
        need("python3")
    env = base_env(work)
    out, _ = run([py, "-c", "import ctypes; ctypes.CDLL(None).ta_owns; print('resolved')"],
                 preload_env(env, lib), work)
    if out.strip() != b"resolved":
        raise Failure("ta_owns is not resolvable in a preloaded python")
    script = os.path.join(work, "alloc_heavy.py")
    with open(script, "w") as f:
        f.write(PYTHON_SCRIPT)
    out = compare("python", [py, script], env, lib, work)
    if len(out.splitlines()) != 4:
        raise Failure(f"python: unexpected output {out!r}")


def prog_sort(lib, work):
    need("sort")
    make_text(os.path.join(work, "input.txt"), 50)
    env = base_env(work)
    compare("sort", ["sort", "--parallel=2", "-S", "64M", "-T", work, "input.txt"], env, lib, work, to_file=True)
    compare("sort -k3n", ["sort", "--parallel=2", "-S", "16M", "-T", work, "-s", "-k3,3n", "input.txt"], env, lib,
            work, to_file=True)


def prog_gcc(lib, work):
    need("gcc")
    make_c_file(os.path.join(work, "gen.c"))
    env = base_env(work)
    compare("gcc -O2", ["gcc", "-O2", "-c", "gen.c", "-o", "gen.o"], env, lib, work, files=["gen.o"])


def prog_sqlite3(lib, work):
    need("sqlite3")
    env = base_env(work)
    db = os.path.join(work, "t.db")

    def fresh():
        if os.path.exists(db):
            os.remove(db)

    out = compare("sqlite3", ["sqlite3", "-batch", db], env, lib, work, stdin=SQL.encode(), setup=fresh)
    if b"200000" not in out:
        raise Failure(f"sqlite3: unexpected output {out[:500]!r}")


def prog_git(lib, work):
    need("git")
    env = base_env(work)
    env.update(GIT_AUTHOR_NAME="Test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.invalid",
               GIT_AUTHOR_DATE="2024-01-01T00:00:00Z", GIT_COMMITTER_DATE="2024-01-01T00:00:00Z",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    repo = os.path.join(work, "repo")
    words = ["alpha", "beta", "gamma", "delta", "malloc", "free", "arena", "page", "segment"]

    def fresh_repo():
        shutil.rmtree(repo, ignore_errors=True)
        for i in range(2000):
            d = os.path.join(repo, f"dir{i % 40}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"file{i}.txt"), "w") as f:
                rr = random.Random(i)
                f.write("\n".join(" ".join(rr.choice(words) for _ in range(12)) for _ in range(1 + i % 60)))

    script = ("set -e; git -c init.defaultBranch=main init -q .; git add -A; git commit -q -m 'initial import';"
              "for n in 1 2 3; do for f in dir$n/*.txt; do echo \"change $n\" >> $f; done;"
              " git commit -q -a -m \"change $n\"; done;"
              "git log --stat --format='%H %an %ad %s'; git rev-parse HEAD; git gc -q; git count-objects -v;"
              "git fsck --no-progress")
    fresh_repo()  # compare() runs in the repository: it must exist before the first setup
    out = compare("git", ["sh", "-c", script], env, lib, repo, setup=fresh_repo)
    if out.count(b"\n") < 2000:
        raise Failure(f"git: short output ({len(out)} bytes)")


def prog_xz(lib, work):
    need("xz")
    make_words(os.path.join(work, "input.txt"), 50)
    env = base_env(work)
    compare("xz -T2", ["xz", "-T2", "-1", "-c", "input.txt"], env, lib, work, to_file=True)
    shutil.copy(os.path.join(work, "stdout-tamalloc"), os.path.join(work, "input.txt.xz"))
    compare("xz -d -T2", ["xz", "-d", "-T2", "-c", "input.txt.xz"], env, lib, work, to_file=True)
    if sha256_file(os.path.join(work, "stdout-tamalloc")) != sha256_file(os.path.join(work, "input.txt")):
        raise Failure("xz: the round trip under tamalloc did not give the input back")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def redis_run(lib, work, env, preload, requests):
    port = free_port()
    e = preload_env(env, lib) if preload else env
    log_path = os.path.join(work, f"redis-{'ta' if preload else 'glibc'}.log")
    errf = open(log_path, "w")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--daemonize", "no", "--dir", work, "--logfile", ""],
                              env=e, cwd=work, stdout=errf, stderr=errf)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while not redis_ping(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise Failure(f"redis-server did not come up (see {log_path})")
            time.sleep(0.05)
        if preload:
            with open(f"/proc/{server.pid}/maps") as f:
                if "libtamalloc" not in f.read():
                    raise Failure("redis-server: libtamalloc is not mapped")
        t0 = time.monotonic()
        out, err = run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(requests), "-q"],
                       env, work)
        dt = time.monotonic() - t0
        text = out.decode(errors="replace").replace("\r", "\n")
        results = [l for l in text.splitlines() if "requests per second" in l]
        bad = [l for l in text.splitlines() if "ERR" in l or "rror" in l]
        if len(results) < 10 or bad:
            raise Failure(f"redis-benchmark did not complete cleanly: {len(results)} results, errors {bad[:5]}\n{text[-2000:]}")
        rss = vm_rss_kib(server.pid)
        log(f"redis [{'tamalloc' if preload else 'glibc'}]: {len(results)} benchmarks in {dt:.1f} s, "
            f"server VmRSS {rss // 1024} MiB")
        if rss > 200 * 1024:
            raise Failure(f"redis-server RSS after the benchmark is {rss // 1024} MiB (> 200 MiB)")
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(timeout=SERVER_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failure("redis-server did not stop on SIGTERM")
        if rc != 0:
            raise Failure(f"redis-server exited with {rc} (see {log_path})")
        errf.flush()
        with open(log_path) as f:
            logtext = f.read()
        if preload and not any(l.startswith("tamalloc") and PROBE_VALUE in l for l in logtext.splitlines()):
            raise Failure("redis-server: no sign of tamalloc in its stderr")
        return len(results)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        errf.close()


def prog_redis(lib, work):
    need("redis-server", "redis-benchmark")
    env = base_env(work)
    # Timings are not compared, so the glibc baseline only has to show which benchmarks complete.
    # 20000 requests for each of redis-benchmark's ~20 benchmarks take about 6 s on an idle 2-core
    # machine (100000 took 30 s there, and more than the old fixed 150 s on a busy one).
    requests = int(os.environ.get("TA_REDIS_REQUESTS", "20000"))
    n0 = redis_run(lib, work, env, False, max(1000, requests // 10))
    n1 = redis_run(lib, work, env, True, requests)
    if n0 != n1:
        raise Failure(f"redis-benchmark ran {n0} benchmarks without tamalloc, {n1} with it")


PROGRAMS = {
    "probe": prog_probe, "python": prog_python, "sort": prog_sort, "gcc": prog_gcc,
    "sqlite3": prog_sqlite3, "git": prog_git, "xz": prog_xz, "redis": prog_redis,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True, help="path of libtamalloc.so")
    ap.add_argument("program", choices=sorted(PROGRAMS))
    a = ap.parse_args()
    lib = os.path.abspath(a.lib)
    if not os.path.exists(lib):
        log(f"FAIL: {lib} does not exist")
        return 1
    work = tempfile.mkdtemp(prefix=f"ta-program-{a.program}-")
    try:
        PROGRAMS[a.program](lib, work)
    except Failure as e:
        log(f"FAIL: {e}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

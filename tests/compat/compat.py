#!/usr/bin/env python3
"""Differential compatibility harness: the same scenarios against berthd and
a real dockerd (Debian's docker.io 20.10, API 1.41), normalized and compared.

  tests/compat/compat.py [--no-build] [--only NAME[,NAME]] [--record]
                         [--berth-only] [--no-latest] [-v]

Needs root, python3-yaml, busybox-static (scripts/mkimage.sh) and the docker
CLI (/usr/local/bin/docker or $DOCKER_CLI). dockerd ($DOCKERD, default
/usr/sbin/dockerd) is optional: without it, berth's results are compared with
the recorded dockerd results in expected/v1.41.json. python3-jsonschema and
../shared/spec/engine-api/ (relative to the repo) are optional: without them
the schema check is skipped with a message.

Scenarios: scenarios.yaml. Ledger: ledger.txt. See README.md.
Exit status: 0 when no scenario marked `pass` in the ledger failed.
"""

import argparse
import json
import os
import re
import shlex
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import compare  # noqa: E402
import schema as schemacheck  # noqa: E402

IMAGE = "berth-test/busybox:latest"
REF_VERSION = "1.41"
EXPECTED = os.path.join(HERE, "expected", "v%s.json" % REF_VERSION)
LEDGER = os.path.join(HERE, "ledger.txt")
SCENARIOS = os.path.join(HERE, "scenarios.yaml")
SPEC_DIR = os.path.abspath(os.path.join(REPO, "..", "shared", "spec", "engine-api"))
BIP = os.environ.get("COMPAT_BIP", "10.213.79.1/24")


def _host_facts():
    """Host-specific strings, so that recorded results compare on any host."""
    facts = [(os.uname().release, "<kernel>")]
    try:
        with open("/etc/os-release") as f:
            for l in f:
                if l.startswith("PRETTY_NAME="):
                    facts.append((l.split("=", 1)[1].strip().strip('"'), "<os-name>"))
    except OSError:
        pass
    return facts


HOST_FACTS = _host_facts()


def log(msg):
    sys.stderr.write("[compat %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---------------------------------------------------------------- ledger

def extra_files(dirname, ext):
    """Per-area files (`scenarios.d/*.yaml`, `ledger.d/*.txt`), sorted."""
    d = os.path.join(HERE, dirname)
    if not os.path.isdir(d):
        return []
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(ext)]


def load_ledger(path=None):
    """`name  pass` or `name  known-diff: reason`; `name@latest ...` for the
    berth-only run at berth's newest API version (default: same as name).
    Read from ledger.txt and ledger.d/*.txt."""
    led = {}
    paths = [path] if path else [LEDGER] + extra_files("ledger.d", ".txt")
    for path in paths:
        led.update(_load_ledger_file(path))
    return led


def _load_ledger_file(path):
    led = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
            if not line.strip():
                continue
            m = re.match(r"^(\S+)\s+(pass|known-diff:\s*(.+))$", line.strip())
            if not m:
                raise SystemExit("%s:%d: bad ledger line: %r" % (path, n, line))
            led[m.group(1)] = ("pass", "") if m.group(2) == "pass" else ("known-diff", m.group(3))
    return led


# ---------------------------------------------------------------- unix-socket HTTP

class Api:
    def __init__(self, sock):
        self.sock = sock

    def request(self, method, path, body=None, headers=None, timeout=60, upgrade=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sock)
        h = {"Host": "docker", "User-Agent": "berth-compat/1"}
        if upgrade:
            h.update({"Connection": "Upgrade", "Upgrade": "tcp"})
        else:
            h["Connection"] = "close"
        h.update(headers or {})
        if body is not None:
            h["Content-Length"] = str(len(body))
        req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join(
            "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        s.sendall(req.encode() + (body or b""))
        return s

    @staticmethod
    def read_head(s):
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = s.recv(65536)
            if not c:
                break
            buf += c
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs, rest

    @staticmethod
    def read_all(s, rest):
        chunks = [rest]
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)

    def call(self, method, path, body=None, headers=None, timeout=60):
        s = self.request(method, path, body, headers, timeout)
        try:
            status, hdrs, rest = self.read_head(s)
            data = self.read_all(s, rest)
        finally:
            s.close()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = dechunk(data)
        return status, hdrs, data


def dechunk(data):
    out, i = b"", 0
    while i < len(data):
        j = data.find(b"\r\n", i)
        if j < 0:
            break
        n = int(data[i:j].split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += data[j + 2:j + 2 + n]
        i = j + 2 + n + 2
    return out


def stdcopy(data):
    """Demultiplexes a stdcopy stream into {"stdout":..., "stderr":...}."""
    out = {"stdout": b"", "stderr": b""}
    i = 0
    while i + 8 <= len(data):
        kind, n = data[i], struct.unpack(">I", data[i + 4:i + 8])[0]
        name = {0: "stdin", 1: "stdout", 2: "stderr"}.get(kind, "bad-frame-%d" % kind)
        out[name] = out.get(name, b"") + data[i + 8:i + 8 + n]
        i += 8 + n
    if i != len(data):
        out["trailing-garbage"] = data[i:]
    return {k: v.decode("utf-8", "replace") for k, v in out.items()}


# ---------------------------------------------------------------- engines

class Engine:
    def __init__(self, name, sock, data_root, exec_root, version, tmp, docker_cli, spec=None):
        self.name, self.sock, self.version = name, sock, version
        self.data_root, self.exec_root, self.tmp = data_root, exec_root, tmp
        self.docker_cli = docker_cli
        self.api = Api(sock)
        self.spec = spec  # schema.Spec or None

    def env(self):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("DOCKER_") and k.lower() not in ("http_proxy", "https_proxy")}
        e["DOCKER_HOST"] = "unix://" + self.sock
        e["DOCKER_CONFIG"] = os.path.join(self.tmp, "docker-cli-config")
        e["DOCKER_CLI_HINTS"] = "false"
        e["PATH"] = os.path.dirname(self.docker_cli) + ":" + e.get("PATH", "/usr/bin:/bin")
        if self.version != "latest":
            e["DOCKER_API_VERSION"] = self.version
        return e

    def roots(self):
        return [(self.tmp + "/img", "<imgdir>"), (self.data_root, "<data-root>"),
                (self.exec_root, "<exec-root>"), (self.tmp, "<tmp>")] + HOST_FACTS

    def api_version(self):
        if self.version != "latest":
            return self.version
        st, _, b = self.api.call("GET", "/version")
        return json.loads(b)["ApiVersion"]

    def docker(self, args, timeout=60, stdin=None):
        p = subprocess.run([self.docker_cli] + args, env=self.env(), capture_output=True,
                           timeout=timeout, stdin=stdin or subprocess.DEVNULL)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def reset(self):
        """Between scenarios: no containers, only the base image."""
        rc, out, _ = self.docker(["ps", "-aq"])
        if out.split():
            self.docker(["rm", "-f"] + out.split(), timeout=120)
        self.docker(["network", "prune", "-f"])
        rc, out, _ = self.docker(["images", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        for line in out.splitlines():
            ref, _, iid = line.partition(" ")
            if ref == IMAGE:
                continue
            self.docker(["rmi", "-f", iid if ref.startswith("<none>") else ref])
        rc, _, _ = self.docker(["image", "inspect", IMAGE])
        if rc != 0:
            with open(os.path.join(self.tmp, "img", "busybox.tar"), "rb") as f:
                self.docker(["load"], stdin=f)


# ---------------------------------------------------------------- scenario execution

def run_scenario(eng, sc, verbose=False):
    """Runs one scenario's steps on one engine. Returns (results, schema
    violations); results are normalized step results (compared steps only)."""
    ids = compare.IdMap()
    vars_ = {"IMAGE": IMAGE, "IMGDIR": os.path.join(eng.tmp, "img"), "TMP": eng.tmp}
    results, violations = [], []
    apiv = eng.api_version()
    try:
        for i, st in enumerate(sc["steps"]):
            sub = lambda s: string.Template(s).safe_substitute(vars_)  # noqa: E731
            r = run_step(eng, st, sub, apiv, violations, i)
            if "save" in st:
                save = st["save"]
                if isinstance(save, str):
                    vars_[save] = (r.get("stdout") or "").strip()
                else:
                    body = r.get("body")
                    for var, key in save.items():
                        vars_[var] = body.get(key, "") if isinstance(body, dict) else ""
            if verbose:
                log("  %s %s step %d: %s" % (eng.name, sc["name"], i, json.dumps(r)[:400]))
            if st.get("check", True):
                nr = compare.normalize_result(r, ids, eng.roots())
                nr["step"] = i
                results.append(nr)
            if st.get("sleep"):
                time.sleep(float(st["sleep"]))
    finally:
        eng.reset()
    return results, violations


def run_step(eng, st, sub, apiv, violations, idx):
    timeout = st.get("timeout", 60)
    if "docker" in st or "sh" in st:
        stdin = None
        if st.get("stdin"):
            stdin = open(sub(st["stdin"]), "rb")
        try:
            if "docker" in st:
                argv = [eng.docker_cli] + shlex.split(sub(st["docker"]))
            else:
                argv = ["bash", "-c", "set -o pipefail; " + sub(st["sh"])]
            try:
                p = subprocess.run(argv, env=eng.env(), capture_output=True, timeout=timeout,
                                   stdin=stdin or subprocess.DEVNULL)
                rc, out, err = p.returncode, p.stdout.decode("utf-8", "replace"), \
                    p.stderr.decode("utf-8", "replace")
            except subprocess.TimeoutExpired:
                rc, out, err = "timeout", "", "step timed out after %ss" % timeout
        finally:
            if stdin:
                stdin.close()
        r = {"kind": "cli", "rc": rc, "stdout": out, "stderr": err}
        if st.get("json") is False:
            r["json"] = False
        return r
    if "api" in st:
        method, _, path = sub(st["api"]).partition(" ")
        rawpath = path
        if st.get("versioned", True):
            path = "/v%s%s" % (apiv, path)
        body, headers = None, dict(st.get("headers") or {})
        if "body" in st:
            body = sub(json.dumps(st["body"])).encode()
            headers.setdefault("Content-Type", "application/json")
        elif "body_file" in st:
            with open(sub(st["body_file"]), "rb") as f:
                body = f.read()
            headers.setdefault("Content-Type", "application/x-tar")
        elif method in ("POST", "PUT"):
            body = b""
        try:
            status, hdrs, data = eng.api.call(method, path, body, headers, timeout)
        except OSError as e:
            return {"kind": "api", "status": "error: %s" % e}
        r = {"kind": "api", "status": status,
             "content_type": hdrs.get("content-type", "").split(";")[0]}
        if st.get("stream") == "stdcopy":
            r["body"] = stdcopy(data)
        else:
            r["body"] = data.decode("utf-8", "replace")
            ok, j = compare.try_json(r["body"])
            if ok:
                r["body"] = j
                if eng.spec is not None and "<json-stream>" not in j:
                    for v in eng.spec.validate(method, rawpath, status, j):
                        # The unsubstituted path, so that dockerd's own
                        # violations (subtracted) have the same text.
                        violations.append("step %d %s -> %d: %s" % (idx, st["api"], status, v))
        if "headers_compare" in st:
            r["headers"] = {h: hdrs.get(h.lower(), "<absent>") for h in st["headers_compare"]}
        return r
    if "attach" in st:
        return attach_run(eng, sub(st["attach"]), apiv, timeout)
    raise ValueError("unknown step type: %r" % st)


def attach_run(eng, cid, apiv, timeout):
    """POST attach (hijacked, Upgrade: tcp), then start; reads until EOF."""
    s = eng.api.request("POST", "/v%s/containers/%s/attach?stream=1&stdout=1&stderr=1"
                        % (apiv, cid), b"", {"Content-Type": "text/plain"}, timeout, upgrade=True)
    try:
        status, hdrs, rest = Api.read_head(s)
        st2, _, b2 = eng.api.call("POST", "/v%s/containers/%s/start" % (apiv, cid), b"")
        data = Api.read_all(s, rest) if status == 101 else b""
    finally:
        s.close()
    return {"kind": "api", "status": status, "start_status": st2,
            "content_type": hdrs.get("content-type", "").split(";")[0],
            "upgrade": hdrs.get("upgrade", ""), "body": stdcopy(data)}


def run_all(eng, scenarios, out, verbose):
    for sc in scenarios:
        t0 = time.time()
        try:
            out[sc["name"]] = run_scenario(eng, sc, verbose)
        except Exception as e:  # a harness error is a failed scenario, not a crash
            out[sc["name"]] = ([{"harness-error": repr(e)}], [])
        if verbose:
            log("%s: %s %.1fs" % (eng.name, sc["name"], time.time() - t0))


# ---------------------------------------------------------------- comparison

def compare_scenario(sc, want, got):
    """want/got: lists of normalized step results. Returns diff lines."""
    opts = {s_i: st for s_i, st in enumerate(sc["steps"])}
    out = []
    if len(want) != len(got):
        return ["step count differs: docker %d, berth %d" % (len(want), len(got))] + \
            [json.dumps(x)[:300] for x in got if "harness-error" in x]
    for a, b in zip(want, got):
        if "harness-error" in a or "harness-error" in b:
            out.append("harness error: %s" % (a.get("harness-error") or b.get("harness-error")))
            continue
        st = opts.get(a.get("step"), {})
        d = compare.compare_step(a, b, st)
        if d:
            label = st.get("docker") or st.get("sh") or st.get("api") or st.get("attach")
            out.append("step %d (%s):" % (a.get("step"), label))
            out += ["    " + l for l in d]
    return out


def compare_latest(sc, want, got):
    """berth at its newest API version vs docker at 1.41: CLI steps compare
    fully (the CLI output must not depend on the version); API steps compare
    status and non-JSON bodies only (JSON shapes are version-dependent and
    are checked against the newer schema instead)."""
    want2, got2 = [], []
    for a, b in zip(want, got):
        if a.get("kind") == "api" and isinstance(a.get("body"), (dict, list)):
            a = {k: v for k, v in a.items() if k != "body"}
            b = {k: v for k, v in b.items() if k != "body"}
        want2.append(a)
        got2.append(b)
    return compare_scenario(sc, want2 + want[len(want2):], got2 + got[len(got2):])


# ---------------------------------------------------------------- daemons

class Daemons:
    def __init__(self, tmp, docker_cli):
        self.tmp, self.docker_cli = tmp, docker_cli
        self.procs = []
        self.bridge = "bcompat%d" % (os.getpid() % 100000)
        self.bridge_made = False
        self.berth_bridges = []  # each berthd's own default bridge (and nft table)
        self.ctrd_before = set(os.listdir("/run/containerd/s")) if os.path.isdir(
            "/run/containerd/s") else set()
        self.had_etc_docker = os.path.exists("/etc/docker")
        self.had_key = os.path.exists("/etc/docker/key.json")
        self.cgroup = "berth-compat-%d" % os.getpid()

    def _wait_ready(self, proc, sock, secs=30):
        t = time.time() + secs
        while time.time() < t:
            if proc.poll() is not None:
                return False
            if os.path.exists(sock):
                try:
                    st, _, _ = Api(sock).call("GET", "/_ping", timeout=5)
                    if st == 200:
                        return True
                except OSError:
                    pass
            time.sleep(0.1)
        return False

    def start_berthd(self, bindir, name="berthd"):
        t = self.tmp
        sock = t + "/%s.sock" % name
        logf = open(t + "/%s.log" % name, "w")
        # A private default bridge and subnet per berthd (NET-02), so that
        # concurrent runs never share berth0 or its nft table.
        n = len(self.berth_bridges)
        bridge = "bb%d%d" % (os.getpid() % 100000, n)
        self.berth_bridges.append(bridge)
        bip = "10.%d.%d.1/24" % (212 - n, os.getpid() % 256)
        p = subprocess.Popen([bindir + "/berthd", "--data-root", t + "/%s-data" % name,
                              "--exec-root", t + "/%s-exec" % name, "-H", "unix://" + sock,
                              "--pidfile", t + "/%s.pid" % name, "--config-file", t + "/none.json",
                              "--bridge", bridge, "--bip", bip],
                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(("berthd", p))
        if not self._wait_ready(p, sock):
            raise SystemExit("berthd did not start; log:\n" +
                             open(t + "/%s.log" % name).read()[-3000:])
        return sock, t + "/%s-data" % name, t + "/%s-exec" % name

    def start_dockerd(self, dockerd):
        t = self.tmp
        if not os.access(dockerd, os.X_OK):
            return None, "%s not found" % dockerd
        # Our own bridge, so dockerd never touches docker0 (which a
        # concurrently running bench or system dockerd may own).
        r = subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"],
                           capture_output=True)
        if r.returncode != 0:
            return None, "cannot create bridge %s: %s" % (self.bridge, r.stderr.decode().strip())
        self.bridge_made = True
        subprocess.run(["ip", "addr", "add", BIP, "dev", self.bridge], check=False)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=False)
        with open(t + "/dockerd.json", "w") as f:
            f.write("{}")
        sock = t + "/dockerd.sock"
        logf = open(t + "/dockerd.log", "w")
        p = subprocess.Popen([dockerd, "--data-root", t + "/dockerd-data",
                              "--exec-root", t + "/dockerd-exec", "-H", "unix://" + sock,
                              "--pidfile", t + "/dockerd.pid", "--config-file", t + "/dockerd.json",
                              "--bridge", self.bridge, "--iptables=false", "--ip-forward=false",
                              "--ip-masq=false", "--userland-proxy=false",
                              "--cgroup-parent", "/" + self.cgroup,
                              "--storage-driver", "overlay2"],
                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(("dockerd", p))
        if not self._wait_ready(p, sock, 60):
            return None, "dockerd did not start (log tail: %s)" % \
                open(t + "/dockerd.log").read()[-1500:]
        return (sock, t + "/dockerd-data", t + "/dockerd-exec"), None

    def cleanup(self, engines):
        for e in engines:
            try:
                e.reset()
            except Exception:
                pass
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    log("%s (%d) did not stop on TERM, killing" % (name, p.pid))
                    p.kill()
                    p.wait(5)
        # Processes our daemons left behind (dockerd's containerd, shims):
        # only those whose command line names our private temp dir.
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if (self.tmp + "/").encode() in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.2)
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for l in f:
                mp = l.split()[4].replace("\\040", " ")
                if mp.startswith(self.tmp + "/"):
                    mounts.append(mp)
        for mp in sorted(mounts, reverse=True):
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)
        if self.bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for b in self.berth_bridges:
            subprocess.run(["ip", "link", "del", b], capture_output=True)
            subprocess.run(["nft", "delete", "table", "ip", "berth-" + b], capture_output=True)
        for base in ("/sys/fs/cgroup", ):
            for root, dirs, _ in os.walk(base):
                if os.path.basename(root) == self.cgroup:
                    for r2, _, _ in sorted(os.walk(root), key=lambda x: -len(x[0])):
                        try:
                            os.rmdir(r2)
                        except OSError:
                            pass
                    dirs[:] = []
                elif root.count("/") > 5:
                    dirs[:] = []
        if os.path.isdir("/run/containerd/s"):
            for s in os.listdir("/run/containerd/s"):
                if s not in self.ctrd_before:
                    try:
                        os.unlink("/run/containerd/s/" + s)
                    except OSError:
                        pass
            for d in ("/run/containerd/s", "/run/containerd"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        if not self.had_key:
            try:
                os.unlink("/etc/docker/key.json")
            except OSError:
                pass
        if not self.had_etc_docker:
            try:
                os.rmdir("/etc/docker")
            except OSError:
                pass
        subprocess.run(["rm", "-rf", self.tmp])


# ---------------------------------------------------------------- main

def load_scenarios(only=None):
    try:
        import yaml
    except ImportError:
        raise SystemExit("compat: python3-yaml is required (apt-get install python3-yaml)")
    scs = []
    for path in [SCENARIOS] + extra_files("scenarios.d", ".yaml"):
        with open(path) as f:
            scs.extend(yaml.safe_load(f) or [])
    names = [s["name"] for s in scs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit("compat: duplicate scenario names: %s" % ", ".join(sorted(dup)))
    if only:
        want = set(only.split(","))
        scs = [s for s in scs if s["name"] in want]
    return scs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--record", action="store_true",
                    help="write dockerd's normalized results to expected/v1.41.json")
    ap.add_argument("--berth-only", action="store_true",
                    help="do not start dockerd; compare with the recorded results")
    ap.add_argument("--no-latest", action="store_true",
                    help="skip the berth-only run at berth's newest API version")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        raise SystemExit("compat: must run as root")
    scenarios = load_scenarios(args.only)
    ledger = load_ledger()
    docker_cli = os.environ.get("DOCKER_CLI") or (
        "/usr/local/bin/docker" if os.access("/usr/local/bin/docker", os.X_OK) else
        subprocess.run(["sh", "-c", "command -v docker"], capture_output=True,
                       text=True).stdout.strip())
    if not docker_cli:
        raise SystemExit("compat: no docker CLI found (set DOCKER_CLI)")

    if not args.no_build:
        log("cargo build -p berth -p berth-runtime-bin")
        subprocess.run(["cargo", "build", "-q", "-p", "berth", "-p", "berth-runtime-bin"],
                       cwd=REPO, check=True)
    bindir = os.environ.get("BERTH_BIN_DIR") or os.path.join(REPO, "target", "debug")

    specs = {}
    ok, why = schemacheck.available(SPEC_DIR)
    if not ok:
        log("schema check SKIPPED: %s" % why)

    tmp = tempfile.mkdtemp(prefix="berth-compat.")
    os.chmod(tmp, 0o711)
    os.makedirs(tmp + "/docker-cli-config")
    d = Daemons(tmp, docker_cli)
    engines = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    try:
        subprocess.run([REPO + "/scripts/mkimage.sh", tmp + "/img"], check=True,
                       stdout=subprocess.DEVNULL)
        bsock, bdata, bexec = d.start_berthd(bindir)
        berth_ref = Engine("berthd@" + REF_VERSION, bsock, bdata, bexec, REF_VERSION, tmp,
                           docker_cli)
        engines.append(berth_ref)
        # A second berthd with its own state for the run at the newest API
        # version, so that the two berth runs see the same initial state.
        lsock, ldata, lexec = d.start_berthd(bindir, "berthd-latest")
        berth_latest = Engine("berthd@latest", lsock, ldata, lexec, "latest", tmp, docker_cli)
        engines.append(berth_latest)
        docker = None
        live_skip = None
        if args.berth_only:
            live_skip = "--berth-only"
        else:
            r, live_skip = d.start_dockerd(os.environ.get("DOCKERD", "/usr/sbin/dockerd"))
            if r:
                docker = Engine("dockerd@" + REF_VERSION, r[0], r[1], r[2], REF_VERSION, tmp,
                                docker_cli)
                engines.append(docker)
        if ok:
            specs[REF_VERSION] = schemacheck.Spec(os.path.join(SPEC_DIR, "v%s.yaml" % REF_VERSION))
            berth_ref.spec = specs[REF_VERSION]
            if docker:
                docker.spec = specs[REF_VERSION]
            newest = berth_latest.api_version()
            p = os.path.join(SPEC_DIR, "v%s.yaml" % newest)
            if os.path.exists(p):
                berth_latest.spec = schemacheck.Spec(p)
            else:
                log("schema check at %s SKIPPED: %s missing" % (newest, p))
        for e in engines:
            rc, out, err = e.docker(["load", "-i", tmp + "/img/busybox.tar"])
            if rc != 0:
                if e is docker:
                    live_skip = "dockerd cannot load the test image: " + err.strip()
                    docker = None
                    continue
                raise SystemExit("compat: berthd cannot load the test image: " + err)
        if docker:
            rc, out, err = docker.docker(["run", "--rm", IMAGE, "true"])
            if rc != 0:
                live_skip = "dockerd cannot run a container: " + err.strip()
                docker = None

        res = {"ref": {}, "docker": {}, "latest": {}}
        threads = [threading.Thread(target=run_all, args=(berth_ref, scenarios, res["ref"],
                                                          args.verbose))]
        if docker:
            threads.append(threading.Thread(target=run_all, args=(docker, scenarios,
                                                                  res["docker"], args.verbose)))
        log("running %d scenarios on %s" % (len(scenarios),
                                            " and ".join(e.name for e in (berth_ref, docker)
                                                         if e)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not args.no_latest:
            log("running %d scenarios on berthd at its newest API version (%s)"
                % (len(scenarios), berth_latest.api_version()))
            run_all(berth_latest, scenarios, res["latest"], args.verbose)
        dversion = docker.docker(["version", "--format", "{{.Server.Version}}"])[1].strip() \
            if docker else None
    finally:
        d.cleanup(engines)

    return report(scenarios, ledger, res, docker is not None, live_skip, dversion, args)


def report(scenarios, ledger, res, live, live_skip, dversion, args):
    recorded = {}
    if os.path.exists(EXPECTED):
        with open(EXPECTED) as f:
            recorded = json.load(f).get("scenarios", {})
    if live:
        want_all = {n: {"steps": r[0], "schema": r[1]} for n, r in res["docker"].items()}
        if args.record:
            rec = dict(recorded) if args.only else {}
            rec.update(want_all)
            os.makedirs(os.path.dirname(EXPECTED), exist_ok=True)
            with open(EXPECTED, "w") as f:
                json.dump({"dockerd": dversion, "api": REF_VERSION,
                           "scenarios": dict(sorted(rec.items()))}, f, indent=1, sort_keys=True)
                f.write("\n")
            log("recorded dockerd %s results in %s" % (dversion, os.path.relpath(EXPECTED)))
        else:
            stale = [n for n in want_all if n in recorded and
                     recorded[n]["steps"] != want_all[n]["steps"]]
            missing = [n for n in want_all if n not in recorded]
            if stale or missing:
                log("note: expected/v%s.json is out of date for %s; run with --record"
                    % (REF_VERSION, ", ".join(sorted(stale + missing))))
        print("live comparison: berthd vs dockerd %s at API %s" % (dversion, REF_VERSION))
    else:
        want_all = recorded
        print("LIVE COMPARISON SKIPPED (%s): comparing berthd with the recorded dockerd "
              "results in %s" % (live_skip, os.path.relpath(EXPECTED)))

    passed = failed = skipped = 0
    notes = []
    runs = [("", res["ref"], compare_scenario)]
    if res["latest"]:
        runs.append(("@latest", res["latest"], compare_latest))
    for suffix, got_all, cmp in runs:
        for sc in scenarios:
            key = sc["name"] + suffix
            status, reason = ledger.get(key) or ledger.get(sc["name"]) or (None, "")
            if sc["name"] not in want_all:
                print("SKIP %s: no dockerd result recorded" % key)
                skipped += 1
                continue
            want = want_all[sc["name"]]
            got, viol = got_all[sc["name"]]
            diff = cmp(sc, want["steps"], got)
            known = set(want.get("schema", []))
            viol = [v for v in viol if v not in known]
            if viol:
                diff += ["schema (%s): %s" % ("v1.41" if not suffix else "newest", v)
                         for v in viol]
            if status is None:
                print("FAIL %s: not in the ledger (add `%s  pass` to tests/compat/ledger.txt)"
                      % (key, sc["name"]))
                failed += 1
                for l in diff:
                    print("    " + l)
            elif not diff:
                passed += 1
                if status == "known-diff":
                    notes.append("%s passes but the ledger says known-diff: mark it pass" % key)
                print("PASS %s" % key)
            elif status == "known-diff":
                skipped += 1
                print("KNOWN-DIFF %s: %s" % (key, reason))
                if args.verbose:
                    for l in diff:
                        print("    " + l)
            else:
                failed += 1
                print("FAIL %s (ledger: pass)" % key)
                for l in diff:
                    print("    " + l)
    unknown = set(k.split("@")[0] for k in ledger) - set(s["name"] for s in load_scenarios())
    for n in sorted(unknown):
        notes.append("ledger entry %s has no scenario" % n)
    for n in notes:
        print("note: " + n)
    if not live:
        print("note: live comparison with dockerd was skipped (%s)" % live_skip)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)

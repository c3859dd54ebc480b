"""Helpers shared by bench/sessions.py and bench/terminal.py (see bench/README).

A private sandboxd on a free loopback port, the Docker Engine API over its
unix socket, the container body sandboxd sends (for direct baselines), and
percentiles. Run with Debian's /usr/bin/python3 (it has `websockets`).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

DOCKER_SOCK = "/var/run/docker.sock"
API = "/v1.41"  # what sandboxd speaks (worker/docker.h)
BIN = os.environ.get("SBX_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sandboxd"))


class Timeout(Exception):
    pass


def bound_run(seconds):
    """SIGALRM after `seconds` raises Timeout; SIGTERM/SIGINT exit. Either way `finally` blocks clean up."""
    def on_alarm(*_):
        raise Timeout(f"run took longer than {seconds} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(seconds)


# --- Docker Engine API ---------------------------------------------------------

class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("docker", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def docker(method, path, body=None, timeout=60):
    """One call on a fresh connection, as sandboxd makes them; returns (status, parsed JSON or bytes)."""
    conn = _UnixConn(DOCKER_SOCK, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, API + path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        if data and (r.getheader("Content-Type") or "").startswith("application/json"):
            data = json.loads(data)
        return r.status, data
    finally:
        conn.close()


def container_spec(image, runtime, host, session="bench"):
    """The body of worker/container.c's sbx_container_spec with conf/sandboxd.yaml's defaults."""
    gvisor = runtime.startswith("runsc")
    pids = 50
    host_pids = max(1000, 2 * pids * pids + 20 * pids + 200) if gvisor else pids + 10
    tmpfs = "rw,exec,nosuid,nodev,size=67108864"
    ulimits = [{"Name": "nofile", "Soft": 256, "Hard": 256}, {"Name": "fsize", "Soft": 64 << 20, "Hard": 64 << 20}]
    if gvisor:
        ulimits.append({"Name": "nproc", "Soft": pids, "Hard": pids})
    return {
        "Image": image, "User": "1000:1000", "WorkingDir": "/home/sandbox",
        "Tty": True, "OpenStdin": True, "StdinOnce": False,
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "NetworkDisabled": True,
        "Env": ["TERM=xterm-256color", "HOME=/home/sandbox", "HISTCONTROL=ignorespace"],
        "Labels": {"sandboxd.session": session, "sandboxd.host": host, "sandboxd.created": str(int(time.time() * 1000)),
                   "sandboxd.environment": "bash", "sandboxd.kind": "session"},
        "HostConfig": {
            "Runtime": runtime, "NetworkMode": "none", "ReadonlyRootfs": True, "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"], "Memory": 128 << 20, "MemorySwap": 128 << 20,
            "NanoCpus": 500_000_000, "PidsLimit": host_pids, "Ulimits": ulimits,
            "Tmpfs": {"/tmp": tmpfs, "/home/sandbox": tmpfs + ",mode=0755,uid=1000,gid=1000"},
            "RestartPolicy": {"Name": "no"}, "LogConfig": {"Type": "none"}, "OomScoreAdj": 500, "Init": False,
        },
    }


def docker_run(spec):
    """create + start; returns (container id, create s, start s)."""
    t0 = time.perf_counter()
    st, r = docker("POST", "/containers/create", spec)
    t1 = time.perf_counter()
    if st != 201:
        raise RuntimeError(f"docker create: {st} {r}")
    st, r2 = docker("POST", f"/containers/{r['Id']}/start")
    t2 = time.perf_counter()
    if st not in (204, 304):
        docker_rm(r["Id"])
        raise RuntimeError(f"docker start: {st} {r2}")
    return r["Id"], t1 - t0, t2 - t1


def docker_rm(cid):
    st, r = docker("DELETE", f"/containers/{cid}?force=1&v=1")
    if st not in (204, 404):
        raise RuntimeError(f"docker rm {cid[:12]}: {st} {r}")


def docker_list(host):
    """The containers (running or not) labelled sandboxd.host=HOST, as GET /containers/json gives them."""
    f = urllib.parse.quote(json.dumps({"label": [f"sandboxd.host={host}"]}))
    st, r = docker("GET", f"/containers/json?all=1&filters={f}")
    return r if st == 200 else []


def docker_ids(host):
    return [c["Id"] for c in docker_list(host)]


def docker_rm_host(host):
    """Removes every container labelled sandboxd.host=HOST; returns how many."""
    ids = docker_ids(host)
    for cid in ids:
        try:
            docker_rm(cid)
        except Exception as e:  # keep cleaning
            print(f"cleanup: {e}", file=sys.stderr)
    return len(ids)


# --- a private sandboxd --------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandboxd:
    """sandboxd -c TMP/sbx.yaml on a free port; host_id bench-PID. Use as a context manager.

    Quotas live in Redis and are global by design: a private redis-server (when installed) keeps a
    bench's hundreds of creates from 127.0.0.1 out of the shared one's hourly window, and back.

    Containers a bench makes itself (baselines) carry sandboxd.host=<host_id>-direct: with the
    server's own host_id its housekeeping would remove them as orphans after 10 s."""

    def __init__(self, image, runtime, workers=2, extra=""):
        self.image, self.runtime, self.workers, self.extra = image, runtime, workers, extra
        self.host = f"bench-{os.getpid()}"
        self.direct_host = self.host + "-direct"
        self.proc = self.redis = None

    def start_redis(self):
        if not shutil.which("redis-server"):
            return ""  # a build without the registry does not need it
        port = free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL, cwd=self.tmp)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return f"redis: {{url: 'redis://127.0.0.1:{port}/0'}}\n"
            time.sleep(0.1)
        raise SystemExit("redis-server did not start within 10 s")

    def __enter__(self):
        if not os.access(BIN, os.X_OK):
            sys.exit(f"no sandboxd binary at {BIN} (run make)")
        self.tmp = tempfile.mkdtemp(prefix="sbx-bench.")
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self):
        self.port = free_port()
        self.logfile = os.path.join(self.tmp, "sbx.log")
        conf = os.path.join(self.tmp, "sbx.yaml")
        redis = self.start_redis()
        with open(conf, "w") as f:
            f.write(redis + f"listen: [127.0.0.1:{self.port}]\nworkers: {self.workers}\n"
                    f"pid_file: {self.tmp}/sbx.pid\nhost_id: {self.host}\ndrain_timeout: 5s\n"
                    "log: {level: info}\n"
                    f"docker: {{image: {self.image}, runtime: {self.runtime}}}\n"
                    "sessions: {max_per_ip: 200, per_ip_per_hour: 100000, capacity: 128, commands_per_minute: 100000}\n"
                    + self.extra)
        with open(self.logfile, "w") as log:
            self.proc = subprocess.Popen([BIN, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):  # 10 s
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit("sandboxd did not answer /health within 10 s; log:\n" + open(self.logfile).read())

    def __exit__(self, *exc):
        left = signal.alarm(0)  # no Timeout in the middle of cleaning up; re-armed below
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers drain (drain_timeout 5s)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                print("sandboxd still up 15 s after SIGQUIT, killing", file=sys.stderr)
                for pid in [self.proc.pid] + self.children():
                    os.kill(pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
        for h in (self.host, self.direct_host):
            n = docker_rm_host(h)
            if n:
                print(f"cleanup: removed {n} container(s) labelled sandboxd.host={h}", file=sys.stderr)
        if os.environ.get("KEEP_LOG"):
            print(f"log kept in {self.logfile}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if left:
            signal.alarm(left)

    def request(self, method, path, body=None, conn=None, timeout=60):
        """One HTTP/1.1 request; returns (status, parsed JSON or text)."""
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"} if body is not None else {})
            r = c.getresponse()
            data = r.read().decode()
            try:
                data = json.loads(data)
            except ValueError:
                pass
            return r.status, data
        finally:
            if conn is None:
                c.close()

    def create(self):
        st, r = self.request("POST", "/api/v1/sessions", {"toolPair": "bench"})
        if st != 201:
            raise RuntimeError(f"POST /api/v1/sessions: {st} {r}")
        return r["sessionId"]

    def delete(self, sid, missing_ok=False):
        st, r = self.request("DELETE", f"/api/v1/sessions/{sid}")
        if st not in (200, 204) and not (missing_ok and st == 404):
            raise RuntimeError(f"DELETE session: {st} {r}")

    def log(self, msg):
        """The server's JSON log lines whose msg is `msg`."""
        out = []
        with open(self.logfile) as f:
            for line in f:
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if j.get("msg") == msg:
                    out.append(j)
        return out

    def children(self):
        kids = []
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        kids.append(int(d))
            except (ValueError, OSError, IndexError):
                pass
        return kids


# --- numbers -------------------------------------------------------------------

def pct(xs, p):
    """Percentile by linear interpolation between closest ranks (p99 of 50 samples ~ the max)."""
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    i = int(k)
    return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (k - i)


def summary(xs):
    return {"p50": pct(xs, 50), "p99": pct(xs, 99), "min": min(xs), "max": max(xs)}


def proc_mem_kb(pid):
    """(RSS, PSS) of a process in kB."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss

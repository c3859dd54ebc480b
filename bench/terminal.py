#!/usr/bin/python3
"""Terminal keystroke echo latency and output throughput: sandboxd's WebSocket vs. a raw Docker attach.
See bench/README. usage: bench/terminal.py [--keys 200] [--mb 20] [--rounds 1] [--runtime runsc|runc] [--image I]"""
import argparse
import asyncio
import os
import sys
import time

import websockets

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbxbench import API, DOCKER_SOCK, Sandboxd, bound_run, container_spec, docker, docker_rm, docker_run, summary

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--keys", type=int, default=200, help="keystrokes per terminal (default 200)")
ap.add_argument("--mb", type=int, default=20, help="MB of output to cat (default 20; /tmp holds 64)")
ap.add_argument("--rounds", type=int, default=1, help="cat runs per terminal (default 1)")
ap.add_argument("--runtime", default="runsc")
ap.add_argument("--image", default="sandboxd/sandbox:bookworm")
ap.add_argument("--timeout", type=int, default=300, help="seconds before the run gives up (and cleans up)")
args = ap.parse_args()
bound_run(args.timeout)
LINE = 50  # keystrokes on one line before a Ctrl-U clears it


class Term:
    """A terminal byte stream: send(bytes), recv() -> bytes, plus waiting helpers."""
    frames = 0

    async def expect(self, needle, timeout=30):
        """Reads until needle has arrived (it may straddle reads)."""
        acc = b""
        while needle not in acc:
            acc = acc[-len(needle):] + await asyncio.wait_for(self.recv(), timeout)

    async def drain(self, quiet=0.3):
        """Reads until nothing has come for `quiet` seconds."""
        while True:
            try:
                await asyncio.wait_for(self.recv(), quiet)
            except asyncio.TimeoutError:
                return

    async def ready(self):
        await self.expect(b"$ ")  # the prompt
        await self.drain()


class WsTerm(Term):
    """sandboxd's terminal, as the browser sees it: text frames in and out."""

    async def open(self, port, sid):
        self.ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/sessions/{sid}/ws",
                                           compression=None, max_size=None, ping_interval=None)
        while '"initComplete"' not in (m := await asyncio.wait_for(self.ws.recv(), 30)):
            pass
        if '"success":true' not in m:
            raise RuntimeError(f"init failed: {m}")
        await self.ready()  # sandboxd's hidden init step prints a fresh prompt
        return self

    async def send(self, b):
        await self.ws.send(b.decode())

    async def recv(self):
        m = await self.ws.recv()
        self.frames += 1
        return m.encode() if isinstance(m, str) else m

    async def close(self):
        await self.ws.close()


class RawTerm(Term):
    """POST /containers/ID/attach hijacked with Upgrade: tcp: the TTY's raw bytes."""

    async def open(self, cid):
        self.r, self.w = await asyncio.open_unix_connection(DOCKER_SOCK, limit=1 << 20)
        self.w.write(f"POST {API}/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                     "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
        head = await asyncio.wait_for(self.r.readuntil(b"\r\n\r\n"), 30)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"attach: {head!r}")
        docker("POST", f"/containers/{cid}/resize?h=24&w=80")  # as sandboxd does on attach
        await self.send(b"\r")  # the first prompt went out before we attached
        await self.ready()
        return self

    async def send(self, b):
        self.w.write(b)
        await self.w.drain()

    async def recv(self):
        d = await self.r.read(1 << 20)
        if not d:
            raise EOFError("attach stream closed")
        self.frames += 1
        return d

    async def close(self):
        self.w.close()


async def echo(term, n, out):
    """n keystrokes of 'a', each timed from send to the read that holds its echo; then Ctrl-U."""
    for _ in range(n):
        t0 = time.perf_counter()
        await term.send(b"a")
        while b"a" not in await asyncio.wait_for(term.recv(), 10):
            pass
        out.append((time.perf_counter() - t0) * 1000)
    await term.send(b"\x15")
    await term.expect(b"\x1b[K")  # readline's clear-to-end-of-line
    await term.drain(0.05)


async def timed(term, cmd, marker, timeout):
    """Types cmd, then times Enter -> marker; returns (bytes received, seconds)."""
    await term.send(cmd.encode())
    await term.drain()  # the echo of the typed command
    n, tail, t0 = 0, b"", time.perf_counter()
    await term.send(b"\r")
    while True:
        d = await asyncio.wait_for(term.recv(), timeout)
        n += len(d)
        if marker in tail + d:
            return n, time.perf_counter() - t0
        tail = d[-len(marker):]


async def main(sbx):
    sid = sbx.create()
    terms = {"sandboxd": await WsTerm().open(sbx.port, sid)}
    cid, _, _ = docker_run(container_spec(args.image, args.runtime, sbx.direct_host, "direct"))
    terms["raw attach"] = await RawTerm().open(cid)
    names = list(terms)
    lat = {k: [] for k in names}
    for block in range(0, args.keys, LINE):  # blocks of one line, alternating which goes first
        for k in names if block // LINE % 2 == 0 else names[::-1]:
            await echo(terms[k], min(LINE, args.keys - block), lat[k])
    gen = rf"head -c {args.mb * 1000000} /dev/zero | tr '\0' x | fold -w 100 > /tmp/big; printf '\107EN\n'"
    for k in names:
        await timed(terms[k], gen, b"GEN", 120)
    thr = {k: [] for k in names}
    for r in range(args.rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            f0 = terms[k].frames
            n, s = await timed(terms[k], r"cat /tmp/big; printf '\105ND\n'", b"END", 120)
            thr[k].append((n, s, terms[k].frames - f0))
    for t in terms.values():
        await t.close()
    sbx.delete(sid)
    docker_rm(cid)
    return lat, thr


with Sandboxd(args.image, args.runtime) as sbx:
    print(f"runtime {args.runtime}, image {args.image}, {os.cpu_count()} CPUs; sandboxd WebSocket (Python websockets "
          f"client) vs. raw Docker attach on {DOCKER_SOCK}, both read with asyncio")
    lat, thr = asyncio.run(main(sbx))

print(f"\nkeystroke echo, {args.keys} x 'a' (Ctrl-U every {LINE}), ms   p50     p99     min     max")
for k, xs in lat.items():
    s = summary(xs)
    print(f"  {k:40} {s['p50']:7.3f} {s['p99']:7.3f} {s['min']:7.3f} {s['max']:7.3f}")
print(f"\ncat of {args.mb} MB (lines of 100 'x'), {args.rounds} round(s)       MB     s       MB/s  reads")
mbs = {}
for k, runs in thr.items():
    for n, s, f in runs:
        print(f"  {k:40} {n / 1e6:6.1f} {s:6.2f} {n / 1e6 / s:8.2f} {f:6d}")
    mbs[k] = sum(n for n, _, _ in runs) / 1e6 / sum(s for _, s, _ in runs)
e = {k: summary(xs) for k, xs in lat.items()}
sb, raw = e["sandboxd"], e["raw attach"]
ratio = mbs["sandboxd"] / mbs["raw attach"]
print(f"echo p50 sandboxd - raw: {sb['p50'] - raw['p50']:+.3f} ms; throughput sandboxd/raw: {ratio:.2f}")
print(f"RESULT runtime={args.runtime} echo_p50_ms={sb['p50']:.3f} echo_p99_ms={sb['p99']:.3f} "
      f"raw_echo_p50_ms={raw['p50']:.3f} raw_echo_p99_ms={raw['p99']:.3f} sbx_mbps={mbs['sandboxd']:.2f} "
      f"raw_mbps={mbs['raw attach']:.2f} throughput_ratio={ratio:.2f}")

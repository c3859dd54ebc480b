#!/usr/bin/python3
"""Session create latency (sandboxd vs. the Docker Engine API alone) and memory with live sessions.
See bench/README. usage: bench/sessions.py [--n 50] [--live 100] [--parallel 4] [--image I] [--runtime R]"""
import argparse
import concurrent.futures as cf
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbxbench import (Sandboxd, bound_run, container_spec, docker_list, docker_rm, docker_run, proc_mem_kb,
                      summary)

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--n", type=int, default=50, help="sequential creates of each kind (default 50)")
ap.add_argument("--live", type=int, default=100, help="live sessions for the memory figure (default 100, max 128)")
ap.add_argument("--parallel", type=int, default=4, help="creates in flight at once for the memory phase")
ap.add_argument("--image", default="sandboxd/sandbox:bookworm")
ap.add_argument("--runtime", default="runsc")
ap.add_argument("--timeout", type=int, default=400, help="seconds before the run gives up (and cleans up)")
args = ap.parse_args()
if not (1 <= args.n <= 127 and 1 <= args.live <= 128):
    ap.error("a server counts at most 128 creates per client IP per hour: --n <= 127, --live <= 128")
bound_run(args.timeout)


def ms(s):
    return s * 1000.0


def latency(sbx):
    """Interleaved: one sandboxd create+delete, then one direct create+start+delete; a warm-up pair first."""
    totals, sids, direct, dcreate, dstart, sdel, ddel = [], [], [], [], [], [], []
    for i in range(args.n + 1):
        t0 = time.perf_counter()
        sid = sbx.create()
        t1 = time.perf_counter()
        sbx.delete(sid)  # answers once the container is removed
        t2 = time.perf_counter()
        cid, c, s = docker_run(container_spec(args.image, args.runtime, sbx.direct_host, f"direct-{i}"))
        t3 = time.perf_counter()
        docker_rm(cid)
        t4 = time.perf_counter()
        if i == 0:
            continue  # warm-up
        totals.append(ms(t1 - t0)), sids.append(sid), sdel.append(ms(t2 - t1))
        direct.append(ms(c + s)), dcreate.append(ms(c)), dstart.append(ms(s)), ddel.append(ms(t4 - t3))
    # "session created" lines carry the redacted id (first 6 characters + "...") and Docker's durations.
    logged = {j["session"][:6]: j for j in sbx.log("session created")}
    create = [float(logged[s[:6]]["create_ms"]) for s in sids]
    start = [float(logged[s[:6]]["start_ms"]) for s in sids]
    own = [t - c - s for t, c, s in zip(totals, create, start)]
    return {"sandboxd total (POST -> 201)": totals, "  docker create (log create_ms)": create,
            "  docker start (log start_ms)": start, "  sandboxd own (total - create - start)": own,
            "direct create+start": direct, "  direct create": dcreate, "  direct start": dstart,
            "sandboxd DELETE": sdel, "direct DELETE (force)": ddel}


def sbx_mem(sbx):
    pids = [sbx.proc.pid] + sbx.children()
    rss, pss = zip(*(proc_mem_kb(p) for p in pids))
    return len(pids), sum(rss), sum(pss)


def container_mem(host):
    """(sum of memory.usage_in_bytes of the host's containers (cgroup v1 cgroupfs layout) or None, how many, states)."""
    total, seen, states = 0, 0, {}
    for c in docker_list(host):
        states[c["State"]] = states.get(c["State"], 0) + 1
        cid = c["Id"]
        try:
            with open(f"/sys/fs/cgroup/memory/docker/{cid}/memory.usage_in_bytes") as f:
                total += int(f.read())
                seen += 1
        except OSError:
            pass
    return (total if seen else None), seen, states


def mem_available_kb():
    with open("/proc/meminfo") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("MemAvailable:"))


def memory(sbx):
    n0, rss0, pss0 = sbx_mem(sbx)
    avail0 = mem_available_kb()
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(args.parallel) as pool:
        sids = list(pool.map(lambda _: sbx.create(), range(args.live)))
    t_create = time.perf_counter() - t0
    time.sleep(2)  # let the sandboxes settle at their prompts
    n1, rss1, pss1 = sbx_mem(sbx)
    cbytes, cn, states = container_mem(sbx.host)
    avail1 = mem_available_kb()
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(lambda s: sbx.delete(s, missing_ok=True), sids))  # a dead sandbox may be reaped
    t_delete = time.perf_counter() - t0
    return dict(states=states, procs=n1, rss0=rss0, pss0=pss0, rss1=rss1, pss1=pss1, cbytes=cbytes, cn=cn,
                host_drop_kb=avail0 - avail1, t_create=t_create, t_delete=t_delete)


# Two servers: a zone counts at most 128 creates per client IP per hour (SBX_HOURLY_MAX), whatever
# per_ip_per_hour says, and the memory phase wants an idle baseline anyway.
with Sandboxd(args.image, args.runtime) as sbx:
    print(f"sandboxd {sbx.workers} workers, runtime {args.runtime}, image {args.image}, {os.cpu_count()} CPUs; "
          f"{args.n} sequential creates each way (after 1 warm-up), interleaved")
    lat = latency(sbx)

print(f"\n{'ms':40} {'p50':>7} {'p99':>7} {'min':>7} {'max':>7}")
for name, xs in lat.items():
    s = summary(xs)
    print(f"{name:40} {s['p50']:7.1f} {s['p99']:7.1f} {s['min']:7.1f} {s['max']:7.1f}")
tot, dir_, own = (summary(lat[k]) for k in ("sandboxd total (POST -> 201)", "direct create+start",
                                            "  sandboxd own (total - create - start)"))
ratio50, ratio99 = tot["p50"] / dir_["p50"], tot["p99"] / dir_["p99"]
print(f"ratio sandboxd/direct: p50 {ratio50:.2f}, p99 {ratio99:.2f}", flush=True)

with Sandboxd(args.image, args.runtime) as sbx:
    mem = memory(sbx)

L = args.live
print(f"\n{L} live sessions ({args.parallel} at a time): created in {mem['t_create']:.1f} s, "
      f"deleted in {mem['t_delete']:.1f} s; containers: "
      + ", ".join(f"{n} {st}" for st, n in sorted(mem["states"].items())))
print(f"{'sandboxd, ' + str(mem['procs']) + ' processes (MB)':40} {'idle':>9} {'+' + str(L) + ' live':>9} {'per session':>12}")
for k in ("rss", "pss"):
    a, b = mem[k + "0"] / 1024, mem[k + "1"] / 1024
    print(f"{'  ' + k.upper():40} {a:9.1f} {b:9.1f} {(b - a) * 1024 / L:9.1f} kB")
if mem["cbytes"] is not None:
    print(f"containers' memory.usage_in_bytes ({mem['cn']}): {mem['cbytes'] / 2**20:.0f} MB, "
          f"{mem['cbytes'] / 2**20 / mem['cn']:.1f} MB each")
print(f"host MemAvailable drop: {mem['host_drop_kb'] / 1024:.0f} MB ({mem['host_drop_kb'] / 1024 / L:.1f} MB per session)")

cmb = f"{mem['cbytes'] / 2**20:.0f}" if mem["cbytes"] is not None else "na"
print(f"RESULT n={args.n} create_p50_ms={tot['p50']:.1f} create_p99_ms={tot['p99']:.1f} "
      f"own_p50_ms={own['p50']:.1f} own_p99_ms={own['p99']:.1f} direct_p50_ms={dir_['p50']:.1f} "
      f"direct_p99_ms={dir_['p99']:.1f} ratio_p50={ratio50:.2f} ratio_p99={ratio99:.2f} live={L} "
      f"sbx_rss_mb={mem['rss1'] / 1024:.1f} sbx_pss_mb={mem['pss1'] / 1024:.1f} "
      f"sbx_pss_kb_per_session={(mem['pss1'] - mem['pss0']) / L:.0f} containers_mb={cmb}")

#!/usr/bin/python3
"""Execute latency: N sequential `echo hi` runs in sh, each in a cold container
under runsc, timed at the client (request -> 200), with the split of where the
time goes from the server's log (Docker create, attach, start, the run itself,
the wait for the exit code; the container's removal happens after the answer).

    bench/execute.py [-n 50] [--image sandboxd/sandbox:bookworm]
"""
import argparse
import time

import sbxbench

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("-n", type=int, default=50)
ap.add_argument("--image", default="sandboxd/sandbox:bookworm")
args = ap.parse_args()

sbxbench.bound_run(600)
with sbxbench.Sandboxd(args.image, "runsc", extra="execute: {per_ip_per_minute: 100000, concurrency: 4}\n") as srv:
    def run():
        t0 = time.monotonic()
        st, body = srv.request("POST", "/api/v1/execute", {"code": "echo hi"})
        assert st == 200 and body["stdout"] == "hi\n", body
        return (time.monotonic() - t0) * 1000
    run()  # warm-up
    totals = [run() for _ in range(args.n)]
    time.sleep(1)
    rows = srv.log("execute finished")[1:]
    q = lambda xs, p: sbxbench.pct(xs, p * 100)
    print(f"{args.n} x echo hi (sh), cold container each, runsc, {args.image}")
    print(f"{'ms':34} {'p50':>8} {'p99':>8} {'min':>8} {'max':>8}")
    def line(name, xs):
        print(f"{name:34} {q(xs,.5):8.1f} {q(xs,.99):8.1f} {min(xs):8.1f} {max(xs):8.1f}")
    line("client total (POST -> 200)", totals)
    for key, name in [("total_ms", "server total"), ("create_ms", "  docker create"), ("attach_ms", "  docker attach"),
                      ("start_ms", "  docker start"), ("run_ms", "  the run (start -> stream end)"), ("wait_ms", "  docker wait")]:
        line(name, [r[key] for r in rows])
    print(f"RESULT n={args.n} p50_ms={q(totals,.5):.1f} p99_ms={q(totals,.99):.1f} "
          + " ".join(f"{k}_p50={q([r[k] for r in rows],.5):.0f}" for k in ("create_ms", "attach_ms", "start_ms", "run_ms", "wait_ms")))

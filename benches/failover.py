#!/usr/bin/env python3
"""Failover time of `pilum scale serve --ha` (issue 12; docs/performance.md, "Failover").

    benches/failover.py                       # release build, 3 replicas, 5 kills, 1.5s lease
    KILLS=9 LEASE=3s benches/failover.py
    PILUM=target/debug/pilum benches/failover.py   # a smoke run of a debug build

Three replicas share a local redis-server (random loopback port, no persistence). Each round
finds the leader from `GET /pools` (`ha.role`), SIGKILLs it, and polls the two others every 10 ms
until one says it leads and the other names it; the time from the kill to that moment is the
failover. The killed replica is then started again (as a follower) for the next round. The goal
is "within TTL + one renew interval" (the lease is renewed every third of it): the script prints
each kill, the median and the spread (min-max), and the verdict.

Everything it starts (redis-server, the replicas) is stopped by pid at the end, and the script
fails if any of them is left.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = int(os.environ.get("KILLS", "5"))
LEASE = os.environ.get("LEASE", "1500ms")
TOKEN = "bench-token"


def lease_secs(text):
    for unit, f in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "").isdigit():
            return float(text[: -len(unit)]) * f
    sys.exit(f"LEASE must look like 1500ms, 2s or 1m, not {text!r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool):
    if shutil.which(tool) is None:
        sys.exit(f"benches/failover.py needs {tool} (Debian package: redis-server)")


def pilum_binary():
    if os.environ.get("PILUM"):
        return os.path.realpath(os.environ["PILUM"])
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "pilum"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "pilum")


def wait(what, deadline_s, probe, every=0.01):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        v = probe()
        if v is not None:
            return v
        time.sleep(every)
    sys.exit(f"error: {what}: not within {deadline_s}s")


def main():
    need("redis-server")
    pilum = pilum_binary()
    lease = lease_secs(LEASE)
    work = tempfile.mkdtemp(prefix="pilum-failover-")
    started = []  # every process this script started, stopped by pid at the end
    try:
        run(pilum, lease, work, started)
    finally:
        for p in started:
            if p.poll() is None:
                p.terminate()
        for p in started:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        left = [p.pid for p in started if p.poll() is None]
        shutil.rmtree(work, ignore_errors=True)
        if left:
            sys.exit(f"error: still running after the bench: {left}")


def run(pilum, lease, work, started):
    os.makedirs(os.path.join(work, "bin"))
    fake = os.path.join(work, "bin", "pulumi")
    with open(fake, "w") as f:
        f.write('#!/bin/sh\ncase "$1 $2" in\n  "config get") printf \'{"value": "3", "secret": false}\\n\';;\nesac\n')
    os.chmod(fake, 0o755)
    with open(os.path.join(work, "pilum-scale.yaml"), "w") as f:
        f.write(
            "pools:\n  workers:\n    project: infra\n    stack: prod\n    key: infra:count\n"
            '    targets: ["urn:pulumi:prod::infra::aws:autoscaling/group:Group::workers"]\n'
            "    min: 1\n    max: 100\n"
        )
    os.makedirs(os.path.join(work, "infra"))
    with open(os.path.join(work, "infra", "Pulumi.prod.yaml"), "w") as f:
        f.write('config:\n  infra:count: "3"\n')

    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", work, "--logfile", os.path.join(work, "redis.log")],
    )
    started.append(redis)

    def redis_up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return None

    wait("redis-server listening", 10, redis_up, 0.05)
    url = f"redis://127.0.0.1:{port}/0"
    env = dict(os.environ, PATH=os.path.join(work, "bin") + os.pathsep + os.environ["PATH"])

    def start(i):
        ready = os.path.join(work, f"r{i}.addr")
        if os.path.exists(ready):
            os.remove(ready)
        log = open(os.path.join(work, f"r{i}.log"), "a")
        p = subprocess.Popen(
            [pilum, "-q", "scale", "serve", "--listen", "127.0.0.1:0", "--ready-file", ready,
             "--state-dir", os.path.join(work, f"state-{i}"), "--token", TOKEN, "--tick", "1h",
             "--ha", url, "--ha-id", f"r{i}", "--ha-lease", LEASE],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        started.append(p)
        addr = wait(f"replica r{i} listening", 20,
                    lambda: open(ready).read().strip() or None if os.path.exists(ready) else None, 0.02)
        return p, addr

    def role(addr):
        req = urllib.request.Request(f"http://{addr}/pools", headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                return json.load(r)["ha"]
        except (OSError, ValueError, KeyError):
            return None

    def one_leader(replicas):
        roles = {i: role(a) for i, (_, a) in replicas.items()}
        if any(r is None for r in roles.values()):
            return None
        leaders = [i for i, r in roles.items() if r.get("role") == "leader"]
        if len(leaders) != 1:
            return None
        name = f"r{leaders[0]}"
        return leaders[0] if all(r.get("leader") == name for r in roles.values()) else None

    replicas = {i: start(i) for i in range(3)}
    times = []
    for k in range(KILLS):
        leader = wait("one leader", 30, lambda: one_leader(replicas))
        proc, _ = replicas.pop(leader)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        new = wait("a new leader", 30, lambda: one_leader(replicas), 0.01)
        took = time.monotonic() - t0
        proc.wait()
        times.append(took)
        print(f"kill {k + 1}/{KILLS}: r{leader} killed, r{new} leads after {took * 1000:.0f} ms", file=sys.stderr)
        replicas[leader] = start(leader)

    goal = lease + lease / 3
    med = statistics.median(times)
    met = sum(t <= goal for t in times)
    verdict = (
        "met in every kill" if met == len(times)
        else "not met in any kill" if met == 0
        else f"spread crosses the goal ({met} of {len(times)} kills met it)"
    )
    print(f"\n| measure | median | spread (min-max) | goal | verdict |\n|---|---|---|---|---|")
    print(f"| failover after SIGKILL of the leader, lease {LEASE}, {KILLS} kills | {med * 1000:.0f} ms "
          f"| {min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms | <= {goal * 1000:.0f} ms (TTL + one renew "
          f"interval) | {verdict} |")


if __name__ == "__main__":
    main()

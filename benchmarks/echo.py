# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Echo benchmark: txmsg-echo against its peers, in the same run.

    .venv/bin/python benchmarks/echo.py [--quick] [--rounds N]
        [--duration S] [--servers a,b,...] [--json FILE]

Every server runs in its own process pinned to CPU 0; the load generator is a
small C program (C{benchmarks/loadgen.c}, compiled with C{cc -O2} into
C{benchmarks/.build/} on first use) pinned to CPU 1.  Scenarios: 64-byte
ping-pong over 1 and 50 connections, and 64 KiB streaming over 4
connections, each for a fixed time; each round runs every scenario against
every server (the server order rotates per round) and the tables show the
median of the rounds.

Servers (L{SERVERS}: name -> command; add one there):

  - C{c-epoll}: the C echo server in C{loadgen.c}, the ceiling, which shows
    the generator is not the bottleneck;
  - C{txmsg-echo}: C{twistd -n txmsg-echo} with its default limits (1000
    connections, 300 s idle timeout), no events, its default write-through
    transport and, since no C{-r} is given, txmsg's lean epoll reactor:
    what a user runs;
  - C{txmsg-echo-stock}: the same on Twisted's stock C{EPollReactor}
    (C{twistd -r epoll txmsg-echo}): write-through alone;
  - C{txmsg-echo-std} (not run by default): C{twistd -r epoll txmsg-echo
    --no-write-through}, Twisted's standard write path and reactor (what
    txmsg-echo was before issue 10);
  - C{txmsg-echo-lean} (not run by default): the tap service built by
    C{_echo_servers.py} on L{txmsg.net.epollreactor}, without twistd;
  - C{wire.Echo}: L{twisted.protocols.wire.Echo} on the same (default, epoll)
    reactor;
  - C{asyncio}, C{uvloop}: a stdlib C{asyncio.Protocol} echo, and the same on
    uvloop when C{import uvloop} works;
  - not run by default: C{txmsg-factory}, L{txmsg.echo.EchoServerFactory}
    started exactly like C{wire.Echo}, to separate twistd's set-up from the
    protocol's cost; C{txmsg-wt} / C{txmsg-wt-lean}, the same on a
    write-through endpoint (and the lean reactor); C{wire.Echo-wt}.

C{--syscalls} adds, after the rounds, each server's system calls per round
trip (C{strace -c -f} attached for an extra, untimed window).  The last
lines check issue 10's goals (txmsg-echo vs asyncio and wire.Echo) on the
rates and on server CPU per round trip.

Besides round-trips/s, p50/p99 latency and MB/s, it prints each server's CPU
time per round trip (from C{/proc/PID/stat}) and the generator's CPU share
(from its own C{getrusage}): a generator share well below 100% means the
server, not the generator, set the pace.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(HERE, ".build")
LOADGEN_SRC = os.path.join(HERE, "loadgen.c")
LOADGEN = os.path.join(BUILD, "loadgen")
PEERS = os.path.join(HERE, "_echo_servers.py")
PY = sys.executable
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
HOST = "127.0.0.1"
SERVER_CPU, GEN_CPU = 0, 1
TXMSG = "txmsg-echo"
TXMSG_STD = "txmsg-echo-std"
TXMSG_STOCK = "txmsg-echo-stock"
BASELINE = "wire.Echo"
GOAL = 0.95
GEN_BOUND = 0.7  # flag rows where the generator's CPU share is this high
BUSY = 0.15  # warn when other processes used more CPU than this during a window
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP = 0.3  # loadgen's uncounted warm-up, seconds


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _twistd_echo(port: int, *options: str, reactor: str | None = None) -> list[str]:
    return [
        TWISTD,
        "-n",
        "--pidfile=",
        *(["--reactor", reactor] if reactor else []),
        "txmsg-echo",
        "--listen",
        "tcp:{}:interface={}".format(port, HOST),
        *options,
    ]


# name -> (command for a port, run by default?)
SERVERS: dict[str, tuple[Callable[[int], list[str]], bool]] = {
    "c-epoll": (lambda port: [LOADGEN, "server", HOST, str(port)], True),
    TXMSG: (
        lambda port: _twistd_echo(port, "--max-connections", "1000", "--idle-timeout", "300"),
        True,
    ),
    TXMSG_STD: (lambda port: _twistd_echo(port, "--no-write-through", reactor="epoll"), False),
    TXMSG_STOCK: (
        lambda port: _twistd_echo(
            port, "--max-connections", "1000", "--idle-timeout", "300", reactor="epoll"
        ),
        True,
    ),
    "txmsg-echo-lean": (lambda port: [PY, PEERS, "txmsg-lean", str(port)], False),
    BASELINE: (lambda port: [PY, PEERS, "wire", str(port)], True),
    "wire.Echo-wt": (lambda port: [PY, PEERS, "wire-wt", str(port)], False),
    "asyncio": (lambda port: [PY, PEERS, "asyncio", str(port)], True),
    "uvloop": (lambda port: [PY, PEERS, "uvloop", str(port)], _has_uvloop()),
    "txmsg-factory": (lambda port: [PY, PEERS, "txmsg-factory", str(port)], False),
    "txmsg-wt": (lambda port: [PY, PEERS, "txmsg-wt", str(port)], False),
    "txmsg-wt-lean": (lambda port: [PY, PEERS, "txmsg-wt-lean", str(port)], False),
}


@dataclass(frozen=True)
class Scenario:
    """
    One load shape: C{loadgen MODE HOST PORT CONNS SECONDS SIZE}.
    """

    key: str
    title: str
    mode: str
    conns: int
    size: int


SCENARIOS = [
    Scenario("pp1", "64-byte ping-pong, 1 connection", "pingpong", 1, 64),
    Scenario("pp50", "64-byte ping-pong, 50 connections", "pingpong", 50, 64),
    Scenario("stream", "64 KiB streaming, 4 connections", "stream", 4, 65536),
]


def build_loadgen() -> None:
    """
    Compile loadgen.c unless the binary is newer than the source.
    """
    if os.path.exists(LOADGEN) and os.path.getmtime(LOADGEN) >= os.path.getmtime(LOADGEN_SRC):
        return
    os.makedirs(BUILD, exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-o", LOADGEN, LOADGEN_SRC], check=True)


def _pinned(cpu: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {cpu})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """
    @return: user + system CPU seconds of process C{pid} (all its threads).
    """
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """
    @return: CPU seconds since boot, over all CPUs, spent busy (user, nice,
        system, irq and softirq) and stolen by the hypervisor (from
        /proc/stat).  Interrupt time is counted as busy because, on a kernel
        without IRQ time accounting, the ticks that land in softirq (loopback
        TCP makes many) are charged to the interrupted process in
        /proc/PID/stat but filed under softirq in /proc/stat: leaving them
        out would make "other" come out negative.
    """
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    busy = values[0] + values[1] + values[2] + values[5] + values[6]
    return busy / CLK_TCK, values[7] / CLK_TCK


class Server:
    """
    One echo server process pinned to L{SERVER_CPU}.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = _free_port()
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.log = open(os.path.join(BUILD, name + ".log"), "wb")
        self.proc = subprocess.Popen(
            SERVERS[name][0](self.port),
            cwd=BUILD,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=_pinned(SERVER_CPU),
        )
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("{} exited at start-up; see {}".format(name, self.log.name))
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("{} is not listening after 15 s".format(name)) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """
        Terminate the process.
        """
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def measure(server: Server, scenario: Scenario, duration: float) -> dict[str, Any]:
    """
    Run the generator against C{server} and return its result line plus the
    server's CPU over the measured window.
    """
    if server.proc.poll() is not None:
        raise RuntimeError("{} died; see {}".format(server.name, server.log.name))
    argv = [
        LOADGEN,
        scenario.mode,
        HOST,
        str(server.port),
        str(scenario.conns),
        str(duration),
        str(scenario.size),
    ]
    gen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=_pinned(GEN_CPU))
    watchdog = threading.Timer(duration + 30, gen.kill)
    watchdog.start()
    try:
        assert gen.stdout is not None
        if gen.stdout.readline().strip() != "START":
            raise RuntimeError("generator failed against {}".format(server.name))
        cpu0, (busy0, steal0) = proc_cpu(server.proc.pid), machine_cpu()
        line = gen.stdout.readline()
        cpu1, (busy1, steal1) = proc_cpu(server.proc.pid), machine_cpu()
        gen.wait()
    finally:
        watchdog.cancel()
    result: dict[str, Any] = json.loads(line)
    wall = result["seconds"]
    server_cpu = cpu1 - cpu0
    gen_cpu = result["cpu_user_s"] + result["cpu_sys_s"]
    result["server_cpu_share"] = server_cpu / wall
    result["server_us_per_rt"] = (
        server_cpu * 1e6 / result["roundtrips"] if result["roundtrips"] else None
    )
    result["server_us_per_mb"] = (
        server_cpu * 1e6 / (result["bytes"] / 1e6) if result["bytes"] else None
    )
    # CPU used by anything but this server and this generator: other work
    # (including interrupt time not charged to either).  Only tick rounding
    # can make it slightly negative now; the raw value is kept for --json.
    other = (busy1 - busy0) - server_cpu - gen_cpu
    result["other_cpu_raw"] = other / wall
    result["other_cpu_share"] = max(0.0, other) / wall
    result["steal_share"] = (steal1 - steal0) / wall
    return result


def syscalls_per_rt(server: Server, scenario: Scenario, duration: float) -> dict[str, float] | None:
    """
    Count the server's system calls per round trip with C{strace -c -f}
    attached for one window (strace slows the server down: these windows are
    not part of the rates).

    @return: calls per round trip by system call name (plus C{"total"}), or
        L{None} when strace is not installed or cannot attach.
    """
    import shutil
    import signal

    if shutil.which("strace") is None:
        return None
    out = os.path.join(BUILD, "strace-{}-{}.txt".format(server.name, scenario.key))
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", out, "-p", str(server.proc.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    if tracer.poll() is not None:
        return None
    try:
        result = measure(server, scenario, duration)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    if not result["roundtrips"]:
        return None
    # strace counted the generator's whole run, its warm-up included
    roundtrips = result["rps"] * (result["seconds"] + WARMUP)
    counts: dict[str, float] = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3]) / roundtrips
    counts["total"] = sum(counts.values())
    return counts


def print_syscalls(table: dict[str, dict[str, dict[str, float] | None]]) -> None:
    """
    Print system calls per round trip by server and scenario.
    """
    print("\n== system calls per round trip (strace -c -f on the server) ==")
    for key, by_server in table.items():
        for name, counts in by_server.items():
            if counts is None:
                print("{:<6} {:<15} strace unavailable".format(key, name))
                continue
            main = sorted(
                ((v, k) for k, v in counts.items() if k != "total" and v >= 0.01),
                reverse=True,
            )
            print(
                "{:<6} {:<15} {:5.2f}  ({})".format(
                    key,
                    name,
                    counts["total"],
                    ", ".join("{} {:.2f}".format(k, v) for v, k in main),
                )
            )


_METRICS = [
    "rps",
    "p50_us",
    "p99_us",
    "mb_s",
    "server_us_per_rt",
    "server_us_per_mb",
    "server_cpu_share",
    "cpu_share",
    "other_cpu_share",
    "steal_share",
    "errors",
]


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """
    @return: the per-metric median of several rounds' results.
    """
    out: dict[str, Any] = {}
    for m in _METRICS:
        values = [r[m] for r in rounds if r.get(m) is not None]
        out[m] = statistics.median(values) if values else None
    return out


def _primary(scenario: Scenario) -> str:
    return "mb_s" if scenario.mode == "stream" else "rps"


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(
    scenario: Scenario, medians: dict[str, dict[str, Any]], duration: float, rounds: int
) -> None:
    """
    Print one scenario's medians and the ratio of txmsg-echo to each server.
    """
    stream = scenario.mode == "stream"
    print("\n== {} ({:g} s x {} round(s), median) ==".format(scenario.title, duration, rounds))
    cost = "srv us/MB" if stream else "srv us/rt"
    row = "{:<14}{:>10}{:>9}{:>9}{:>9}{:>11}{:>9}{:>9}{:>7}{:>7}{:>9}"
    print(
        row.format(
            "server",
            "rt/s",
            "p50 us",
            "p99 us",
            "MB/s",
            cost,
            "srv CPU",
            "gen CPU",
            "other",
            "steal",
            "txmsg/x",
        )
    )
    key = _primary(scenario)
    ours = medians.get(TXMSG, {}).get(key)
    for name, m in medians.items():
        ratio = ours / m[key] if ours and m[key] else None
        print(
            row.format(
                name,
                "-" if stream else _fmt(m["rps"], ",.0f"),
                "-" if stream else _fmt(m["p50_us"], ".1f"),
                "-" if stream else _fmt(m["p99_us"], ".1f"),
                _fmt(m["mb_s"], ",.1f" if stream else ".2f"),
                _fmt(m["server_us_per_mb" if stream else "server_us_per_rt"], ".1f"),
                _fmt(m["server_cpu_share"] * 100, ".0f") + "%",
                _fmt(m["cpu_share"] * 100, ".0f") + "%",
                _fmt(m["other_cpu_share"] * 100, ".0f") + "%",
                _fmt(m["steal_share"] * 100, ".0f") + "%",
                "-" if ratio is None or name == TXMSG else _fmt(ratio, ".2f") + "x",
            )
        )
        if m["cpu_share"] is not None and m["cpu_share"] >= GEN_BOUND:
            print(
                "  * {}: the generator used {:.0f}% of its core here: this figure is "
                "close to the generator's own limit, a lower bound".format(
                    name, m["cpu_share"] * 100
                )
            )
        if m["errors"]:
            print("  !! {}: {} connection(s) failed".format(name, m["errors"]))


# issue 10's goals: (scenario, peer, goal on txmsg's rate / peer's rate)
ISSUE10_GOALS = [
    ("pp50", "asyncio", 0.9),
    ("pp50", BASELINE, 1.7),
    ("stream", "asyncio", 0.9),
]


def issue10_verdict(
    medians: dict[str, dict[str, dict[str, Any]]],
    scenarios: list[Scenario],
    names: list[str],
) -> list[str]:
    """
    The write-through goals for txmsg-echo and txmsg-echo-stock, on the rate
    (what the issue asks) and on server CPU per round trip / per MB (the
    steadier figure on a noisy VM: peer's CPU cost / txmsg's).
    """
    lines = []
    keys = {s.key: s for s in scenarios}
    for ours in (TXMSG, TXMSG_STOCK):
        if ours not in names:
            continue
        parts = []
        for key, peer, goal in ISSUE10_GOALS:
            if key not in keys or peer not in names:
                continue
            s = keys[key]
            cost = "server_us_per_mb" if s.mode == "stream" else "server_us_per_rt"
            m, p = medians[key][ours], medians[key][peer]
            rate = m[_primary(s)] / p[_primary(s)] if p[_primary(s)] else 0.0
            cpu = p[cost] / m[cost] if m[cost] else 0.0
            parts.append(
                "{} vs {}: rate {:.2f}x, CPU {:.2f}x (goal >= {}: {})".format(
                    key,
                    peer,
                    rate,
                    cpu,
                    goal,
                    "met" if rate >= goal else "NOT met",
                )
            )
        if parts:
            lines.append("ISSUE 10 {}: {}".format(ours, "; ".join(parts)))
    return lines


def _versions() -> dict[str, str]:
    import twisted

    out = {
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
    }
    try:
        import uvloop

        out["uvloop"] = uvloop.__version__
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    """
    Run the benchmark; return the process exit status.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--duration", type=float, help="seconds per scenario (5; --quick: 1)")
    p.add_argument("--rounds", type=int, help="rounds; the tables show the median (3; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 s per scenario, 1 round")
    p.add_argument("--servers", help="comma-separated subset of: " + ", ".join(SERVERS))
    p.add_argument(
        "--scenarios",
        help="comma-separated subset of: " + ", ".join(s.key for s in SCENARIOS),
    )
    p.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    p.add_argument(
        "--syscalls",
        action="store_true",
        help="after the rounds, count each server's system calls per round trip "
        "with strace -c -f (ping-pong scenarios, 2 s each, not timed)",
    )
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 1.0 if args.quick else 5.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.duration <= 0 or args.rounds < 1:
        p.error("--duration must be > 0 and --rounds >= 1")
    names = args.servers.split(",") if args.servers else [n for n, v in SERVERS.items() if v[1]]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        p.error("unknown server(s): {}".format(", ".join(unknown)))
    scenarios = [s for s in SCENARIOS if not args.scenarios or s.key in args.scenarios.split(",")]
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        p.error("needs 2 CPUs: servers on CPU 0, the generator on CPU 1")

    build_loadgen()
    load_before = os.getloadavg()
    print(
        "echo benchmark: servers on CPU {}, C generator on CPU {}; "
        "{:g} s per scenario, {} round(s); load average {:.2f} {:.2f} {:.2f}".format(
            SERVER_CPU, GEN_CPU, args.duration, args.rounds, *load_before
        )
    )
    print("versions: " + ", ".join("{} {}".format(k, v) for k, v in _versions().items()))
    if not _has_uvloop():
        print("uvloop: not importable, skipped")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.key: {n: [] for n in names} for s in scenarios
    }
    servers: dict[str, Server] = {}
    syscalls: dict[str, dict[str, dict[str, float] | None]] = {}
    try:
        for n in names:
            servers[n] = Server(n)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            print(
                "round {}/{}: {}".format(r + 1, args.rounds, " ".join(order)),
                flush=True,
            )
            for s in scenarios:
                for n in order:
                    results[s.key][n].append(measure(servers[n], s, args.duration))
        if args.syscalls:
            for s in scenarios:
                if s.mode == "pingpong":
                    syscalls[s.key] = {n: syscalls_per_rt(servers[n], s, 2.0) for n in names}
    finally:
        for server in servers.values():
            server.stop()
    load_after = os.getloadavg()

    medians = {s.key: {n: median_of(results[s.key][n]) for n in names} for s in scenarios}
    for s in scenarios:
        print_table(s, medians[s.key], args.duration, args.rounds)
    print(
        "\ncolumns: srv us/rt (us/MB) = server CPU per round trip (per MB echoed);\n"
        "  srv CPU, gen CPU = CPU share of server and generator over the window"
        " (100% = one core);\n"
        "  other = CPU used by other processes and interrupts not charged to server or"
        " generator (/proc/stat user+nice+system+irq+softirq minus both) during the"
        " window; steal = CPU time"
        " the hypervisor took from this VM (both summed over the 2 CPUs)"
    )
    if syscalls:
        print_syscalls(syscalls)
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*load_after))
    busiest = max(m["other_cpu_share"] or 0 for by in medians.values() for m in by.values())
    if busiest > BUSY:
        print(
            "WARNING: other processes used up to {:.0f}% CPU during the measurements: "
            "the machine was not quiet, the figures are unreliable".format(busiest * 100)
        )

    verdicts = issue10_verdict(medians, scenarios, names)
    if TXMSG in names and BASELINE in names:
        ratios = {
            s.key: medians[s.key][TXMSG][_primary(s)] / medians[s.key][BASELINE][_primary(s)]
            for s in scenarios
        }
        ok = all(v >= GOAL for v in ratios.values())
        print(
            "\nVERDICT: txmsg-echo / wire.Echo = {} -> goal >= {} {}".format(
                ", ".join("{} {:.2f}x".format(k, v) for k, v in ratios.items()),
                GOAL,
                "MET" if ok else "NOT MET",
            )
        )
    for line in verdicts:
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "duration": args.duration,
                    "rounds": args.rounds,
                    "load_before": load_before,
                    "load_after": load_after,
                    "versions": _versions(),
                    "medians": medians,
                    "rounds_raw": results,
                    "syscalls_per_rt": syscalls,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Pub/sub delivery rate: txmsg vs raw txredisapi vs a raw-hiredis Twisted
protocol (the ceiling) vs redis-py (blocking and asyncio), in one run.

Independent publishers (C{--publishers} processes, 2 by default: pre-built
pipelined PUBLISH commands on raw sockets) publish N 64-byte messages on a
fresh channel to ONE subscriber at a time, each in its own process.  Every
round prints the publishers' own rate (messages Redis accepted per second,
first send to last reply over all publishers) next to the subscriber's: a
subscriber that received at the publish rate kept up, so its rate is only a
lower bound (marked C{kept up}); one that fell behind is the limit, and its
rate is its own.  The subscribers:

  - txmsg:      txmsg.redis.PubSub, a callback counting messages (each
                one a Message);
  - txmsg-data: the same with subscribe(..., data_only=True): the callback
                gets the payload alone, no Message object;
  - txredisapi: a plain txredisapi SubscriberProtocol subclass counting in
                messageReceived (same settings as txmsg: bytes, no number
                conversion, hiredis parser);
  - hiredis:    a plain Twisted Protocol that sends SUBSCRIBE itself and
                feeds hiredis.Reader directly: no client library, the ceiling;
  - redis-py:   a blocking get_message() loop (hiredis parser);
  - redis-py-listen: a blocking C{for m in pubsub.listen()} loop;
  - redis-asyncio: C{redis.asyncio}, C{async for m in pubsub.listen()} on
                the standard asyncio event loop.

The rate is messages received / (time of last - time of first message); the
subscriber's CPU time over the same span, per message, is the steadier
figure on a noisy machine.  Rounds rotate the subscribers; the median per
subscriber is reported.  The subscriber runs on CPU 1 and the publisher
on CPU 0 (Redis is left where the kernel puts it).

    python benchmarks/redis_pubsub.py            # 200k messages, 5 rounds, 2 publishers
    python benchmarks/redis_pubsub.py --quick    # 10k messages, 1 round
    python benchmarks/redis_pubsub.py --kinds txmsg,hiredis --rounds 9
    python benchmarks/redis_pubsub.py --backlog  # each subscriber drains a 100k backlog

With C{--backlog} the subscriber is stopped (SIGSTOP) while everything is
published and continued afterwards: it then reads a full socket as fast as
it can, so the publishers provably are not the limit and the rate between
its first and last message is its own ceiling (with Redis writing out its
buffer; Redis's CPU is printed).

Needs Redis at $TXMSG_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZE = 64
IDLE = 3.0  # seconds without a message: the subscriber gives up
FIRST_WAIT = 30.0  # ... but it waits this long for the first one (--backlog)


def _redis_py():
    import redis

    from txmsg.redis.url import parse_redis_url

    u = parse_redis_url()
    if u.scheme == "unix":
        return redis.Redis(unix_socket_path=u.path, db=u.db, password=u.password)
    return redis.Redis(
        host=u.host,
        port=u.port,
        db=u.db,
        username=u.username,
        password=u.password,
        ssl=u.tls,
    )


def publisher(channel: str, count: int) -> None:
    """
    Publish C{count} messages as fast as Redis takes them: pre-built,
    pipelined PUBLISH commands on a raw socket (replies read and discarded by
    a thread), so that the publisher is not what limits the rate.  Prints
    C{{"start": ..., "end": ...}}: the monotonic clock (shared by every
    process) at the first send and when the last reply arrived.
    """
    import socket
    import threading

    from txmsg.redis.url import parse_redis_url

    u = parse_redis_url()
    if u.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(u.path)
    else:
        sock = socket.create_connection((u.host, u.port))
    ch = channel.encode()
    payload = b"x" * SIZE
    command = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(ch),
        ch,
        len(payload),
        payload,
    )
    prelude = b""
    if u.password:
        user = (u.username or "default").encode()
        pw = u.password.encode()
        prelude = b"*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(user),
            user,
            len(pw),
            pw,
        )
    replies = threading.Thread(target=_drain, args=(sock,), daemon=True)
    replies.start()
    batch = command * 1000
    sock.sendall(prelude)
    start = time.perf_counter()
    sent = 0
    while sent < count:
        n = min(1000, count - sent)
        sock.sendall(batch if n == 1000 else command * n)
        sent += n
    sock.shutdown(socket.SHUT_WR)
    replies.join(60)
    end = time.perf_counter()
    sock.close()
    print(json.dumps({"start": start, "end": end}), flush=True)


def _drain(sock) -> None:
    while sock.recv(1 << 16):
        pass


def _runq() -> float | None:
    """Seconds this process has spent runnable but waiting for a CPU."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


_RUNQ0: list[float | None] = [None]


def _start_cpu() -> float:
    """At the first message: note the run-queue wait; return the CPU time."""
    _RUNQ0[0] = _runq()
    return time.process_time()


def _report(
    received: int,
    first: float | None,
    last: float | None,
    cpu_first: float | None = None,
    cpu_last: float | None = None,
) -> None:
    elapsed = (last - first) if first is not None and last is not None else 0.0
    cpu = cpu_last - cpu_first if cpu_first is not None and cpu_last is not None else None
    runq0, runq1 = _RUNQ0[0], _runq()
    runq = runq1 - runq0 if runq0 is not None and runq1 is not None else None
    print(
        json.dumps({"received": received, "elapsed": elapsed, "cpu": cpu, "runq": runq}),
        flush=True,
    )


def _redis_py_subscribed(channel: str):  # type: ignore[no-untyped-def]
    """A redis-py PubSub subscribed to C{channel}, once READY is printed."""
    p = _redis_py().pubsub()
    p.subscribe(channel)
    while True:
        m = p.get_message(timeout=5)
        if m and m["type"] == "subscribe":
            break
    print("READY", flush=True)
    return p


def sub_redis_py(channel: str, count: int) -> None:
    p = _redis_py_subscribed(channel)
    received = 0
    first = last = None
    cpu0 = None
    get = p.get_message
    while received < count:
        m = get(timeout=IDLE if first is not None else FIRST_WAIT)
        if m is None:
            break
        if m["type"] == "message":
            if first is None:
                first = time.perf_counter()
                cpu0 = _start_cpu()
            received += 1
    last = time.perf_counter()
    _report(received, first, last, cpu0, time.process_time())


def sub_redis_py_listen(channel: str, count: int) -> None:
    """redis-py's blocking iterator, C{PubSub.listen()}."""
    p = _redis_py_subscribed(channel)
    received = 0
    first = cpu0 = None
    # listen() blocks forever: a socket timeout ends an idle run.
    p.connection._sock.settimeout(FIRST_WAIT)
    try:
        for m in p.listen():
            if m["type"] == "message":
                if first is None:
                    p.connection._sock.settimeout(IDLE)
                    first = time.perf_counter()
                    cpu0 = _start_cpu()
                received += 1
                if received >= count:
                    break
    except Exception:
        pass
    _report(received, first, time.perf_counter(), cpu0, time.process_time())


def sub_redis_asyncio(channel: str, count: int) -> None:
    """C{redis.asyncio}: C{async for} over C{PubSub.listen()}, stock asyncio loop."""
    import asyncio

    import redis.asyncio as aioredis

    from txmsg.redis.url import parse_redis_url

    async def main() -> None:
        u = parse_redis_url()
        r = aioredis.Redis(
            host=u.host, port=u.port, db=u.db, username=u.username, password=u.password
        )
        p = r.pubsub()
        await p.subscribe(channel)
        while True:
            m = await p.get_message(timeout=5)
            if m and m["type"] == "subscribe":
                break
        print("READY", flush=True)
        state = {"n": 0, "first": None, "cpu0": None}

        async def consume() -> None:
            async for m in p.listen():
                if m["type"] == "message":
                    if state["first"] is None:
                        state["first"] = time.perf_counter()
                        state["cpu0"] = _start_cpu()
                    state["n"] += 1
                    if state["n"] >= count:
                        return

        consumer = asyncio.ensure_future(consume())
        seen = -1
        while not consumer.done() and seen != state["n"]:
            seen = state["n"]
            await asyncio.wait([consumer], timeout=IDLE if state["n"] else FIRST_WAIT)
        consumer.cancel()
        last = time.perf_counter() if consumer.done() else time.perf_counter() - IDLE
        _report(state["n"], state["first"], last, state["cpu0"], time.process_time())

    asyncio.run(main())


def _twisted_sub(channel: str, count: int, kind: str) -> None:
    from twisted.internet import defer, reactor, task

    state = {"n": 0, "first": None, "last": None, "cpu0": None, "cpu1": None, "ready": 0.0}
    done = defer.Deferred()
    idle = [None]

    def finish() -> None:
        if not done.called:
            done.callback(None)

    def bump(_message: object = None) -> None:
        n = state["n"] + 1
        state["n"] = n
        if n == 1:
            state["first"] = time.perf_counter()
            state["cpu0"] = _start_cpu()
        if n >= count:
            state["last"] = time.perf_counter()
            state["cpu1"] = time.process_time()
            finish()

    def watchdog() -> None:
        # give up when no message arrived for IDLE seconds (FIRST_WAIT for
        # the first message)
        if state["n"] == 0 and time.perf_counter() - state["ready"] < FIRST_WAIT:
            reactor.callLater(IDLE, watchdog)
        elif state["n"] == idle[0]:
            state["last"] = time.perf_counter() - IDLE
            finish()
        else:
            idle[0] = state["n"]
            reactor.callLater(IDLE, watchdog)

    async def main(_reactor):
        if kind in ("txmsg", "txmsg-data"):
            from txmsg.redis import PubSub

            ps = PubSub(reactor=reactor)
            ps.startService()
            sub = ps.subscribe(channel, bump, data_only=kind == "txmsg-data")
            await sub.when_active()
        elif kind == "hiredis":
            await _raw_hiredis(reactor, channel, bump)
        else:
            import txredisapi

            from txmsg.redis.url import parse_redis_url

            u = parse_redis_url()
            active = defer.Deferred()

            class Counter(txredisapi.SubscriberProtocol):
                def connectionMade(self):
                    d = super().connectionMade()
                    self.whenConnected().addCallback(
                        lambda p: p.subscribe(channel).addCallback(
                            lambda _: active.called or active.callback(None)
                        )
                    )
                    return d

                def messageReceived(self, pattern, ch, message):
                    bump()

            f = txredisapi.SubscriberFactory()
            f.protocol = Counter
            f.charset = None
            f.convertNumbers = False
            f.password = u.password
            f.username = u.username
            f.startConnecting(u.endpoint(reactor))
            await active
        print("READY", flush=True)
        state["ready"] = time.perf_counter()
        reactor.callLater(IDLE, watchdog)
        await done
        _report(state["n"], state["first"], state["last"], state["cpu0"], state["cpu1"])

    task.react(lambda r: defer.Deferred.fromCoroutine(main(r)))


async def _raw_hiredis(reactor, channel: str, on_message) -> None:
    """
    The ceiling: a plain Twisted protocol that sends SUBSCRIBE itself and
    feeds C{hiredis.Reader} directly (no client library at all).
    """
    import hiredis
    from twisted.internet import defer
    from twisted.internet.protocol import Protocol

    from txmsg.redis.url import parse_redis_url

    u = parse_redis_url()
    active = defer.Deferred()

    class RawSubscriber(Protocol):
        def connectionMade(self):
            self.reader = hiredis.Reader()
            if u.password:
                self.transport.write(
                    _resp(
                        [
                            b"AUTH",
                            (u.username or "default").encode(),
                            u.password.encode(),
                        ]
                    )
                )
            self.transport.write(_resp([b"SUBSCRIBE", channel.encode()]))

        def dataReceived(self, data):
            reader = self.reader
            reader.feed(data)
            res = reader.gets()
            while res is not False:
                if type(res) is list and res[0] == b"message":
                    on_message()
                elif type(res) is list and res[0] == b"subscribe":
                    active.callback(None)
                res = reader.gets()

    from twisted.internet.endpoints import connectProtocol

    await connectProtocol(u.endpoint(reactor), RawSubscriber())
    await active


def _resp(parts: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


KINDS = (
    "txmsg",
    "txmsg-data",
    "txredisapi",
    "hiredis",
    "redis-py",
    "redis-py-listen",
    "redis-asyncio",
)
TXMSG_KINDS = ("txmsg", "txmsg-data")

ROLES = {
    "txmsg": lambda ch, n: _twisted_sub(ch, n, "txmsg"),
    "txmsg-data": lambda ch, n: _twisted_sub(ch, n, "txmsg-data"),
    "txredisapi": lambda ch, n: _twisted_sub(ch, n, "txredisapi"),
    "hiredis": lambda ch, n: _twisted_sub(ch, n, "hiredis"),
    "redis-py": sub_redis_py,
    "redis-py-listen": sub_redis_py_listen,
    "redis-asyncio": sub_redis_asyncio,
    "publish": publisher,
}


def _pin(role: str):  # type: ignore[no-untyped-def]
    """
    The subscriber gets CPU 1 and the publisher CPU 0 (Redis floats), on
    machines with 2 CPUs or more: fewer migrations, steadier figures.
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if not {0, 1} <= cpus:
        return None
    cpu = 0 if role == "publish" else 1
    return lambda: os.sched_setaffinity(0, {cpu})


def _child(role: str, channel: str, count: int) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--role",
            role,
            channel,
            str(count),
        ],
        preexec_fn=_pin(role),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _redis_pid() -> int | None:
    """The local Redis server's process id (None when it is not on this host)."""
    try:
        pid = int(_redis_py().info("server")["process_id"])
    except Exception:
        return None
    return pid if os.path.exists(f"/proc/{pid}/stat") else None


def _proc_times(pid: int | None) -> tuple[float, float] | None:
    """CPU seconds (all threads) and run-queue wait seconds of process C{pid}."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/schedstat") as f:
            runq = int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck, runq


KEPT_UP = 0.95  # received at >= 95% of the publish rate: the subscriber kept up
BUSY = 0.8  # a subscriber on less CPU than this over its window was waiting


def limit_verdict(
    share: float, busy: float | None, runq: float | None, backlog: bool = False
) -> str:
    """
    Whether a subscriber's rate is its own limit or a lower bound: it is its
    own limit only when it was running or waiting for a CPU (other processes
    had it) nearly all the time, not waiting for messages.
    """
    if share >= KEPT_UP and not backlog:
        return "kept up with the publishers: a lower bound"
    if busy is not None:
        idle = 1 - busy - (runq or 0.0)
        if idle > 1 - BUSY:
            return f"idle {idle:.0%}, waiting for messages: a lower bound"
        if runq and runq > 0.2:
            return f"CPU-starved ({runq:.0%} waiting for a CPU): the machine is the limit"
    return "the subscriber is the limit"


def one_round(
    kind: str, count: int, publishers: int, redis_pid: int | None = None, backlog: bool = False
) -> dict:
    channel = "txmsg:bench:" + uuid.uuid4().hex
    sub = _child(kind, channel, count)
    line = sub.stdout.readline().strip()
    if line != "READY":
        sub.kill()
        raise SystemExit(f"{kind} subscriber failed to start: {line!r}")
    if backlog:
        # Everything is published while the subscriber is stopped; Redis
        # holds it in the subscriber's output buffer and socket.
        os.kill(sub.pid, signal.SIGSTOP)
    shares = [count // publishers + (i < count % publishers) for i in range(publishers)]
    redis0, wall0 = _proc_times(redis_pid), time.perf_counter()
    pubs = [_child("publish", channel, share) for share in shares]
    spans = []
    for pub in pubs:
        out, _ = pub.communicate(timeout=120)
        spans.append(json.loads(out.strip().splitlines()[-1]))
    if backlog:
        os.kill(sub.pid, signal.SIGCONT)
    out, _ = sub.communicate(timeout=120)
    redis1, wall = _proc_times(redis_pid), time.perf_counter() - wall0
    result = json.loads(out.strip().splitlines()[-1])
    if redis0 and redis1:
        # Redis over the whole round (publishing and delivering): near 100%
        # busy + runq means Redis, or the CPU it could get, was the limit.
        result["redis_busy"] = (redis1[0] - redis0[0]) / wall
        result["redis_runq"] = (redis1[1] - redis0[1]) / wall
    result["rate"] = result["received"] / result["elapsed"] if result["elapsed"] else 0.0
    span = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    result["pub_rate"] = count / span if span > 0 else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k messages, 1 round")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--kinds", help="comma-separated subset of: " + ", ".join(KINDS))
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes (default 2)")
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="publish while the subscriber is stopped (SIGSTOP), then time its drain: "
        "the publishers cannot be the limit (default 100k messages)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.role:
        ROLES[a.role](a.args[0], int(a.args[1]))
        return
    # Backlog: 100k messages is ~14 MB in Redis's output buffer for the
    # subscriber, under the default pub/sub hard limit (32 MB) and drained
    # well within the soft limit's 60 s.
    count = a.count or (10_000 if a.quick else 100_000 if a.backlog else 200_000)
    rounds = a.rounds or (1 if a.quick else 5)
    kinds = a.kinds.split(",") if a.kinds else list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error("unknown subscriber(s): " + ", ".join(unknown))
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    costs: dict[str, list[float]] = {k: [] for k in kinds}
    pub_rates: dict[str, list[float]] = {k: [] for k in kinds}
    busies: dict[str, list[float]] = {k: [] for k in kinds}
    runqs: dict[str, list[float]] = {k: [] for k in kinds}
    redis_pid = _redis_pid()
    print(
        f"{count} messages of {SIZE} bytes, {rounds} interleaved round(s), "
        f"{a.publishers} publisher process(es)"
        + (
            "; backlog mode: published while the subscriber was stopped, then drained "
            "(the rate is the subscriber's own; ignore sub/pub)"
            if a.backlog
            else ""
        )
    )
    for i in range(rounds):
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]
        for kind in order:
            r = one_round(kind, count, a.publishers, redis_pid, a.backlog)
            rates[kind].append(r["rate"])
            pub_rates[kind].append(r["pub_rate"])
            us = None
            if r.get("cpu") and r["received"]:
                us = r["cpu"] * 1e6 / r["received"]
            if us is not None:
                costs[kind].append(us)
                if r["elapsed"]:
                    busies[kind].append(r["cpu"] / r["elapsed"])
                    if r.get("runq") is not None:
                        runqs[kind].append(r["runq"] / r["elapsed"])
            print(
                "  round {} {:<15} received {:>7}/{} in {:6.3f} s: {:>9,.0f} msg/s, "
                "published {:>9,.0f} msg/s ({:.0%}), subscriber CPU {} us/msg, busy {}, runq {}".format(
                    i + 1,
                    kind,
                    r["received"],
                    count,
                    r["elapsed"],
                    r["rate"],
                    r["pub_rate"],
                    r["rate"] / r["pub_rate"] if r["pub_rate"] else 0.0,
                    "-" if us is None else f"{us:.2f}",
                    f"{busies[kind][-1]:.0%}" if us is not None and r["elapsed"] else "-",
                    f"{r['runq'] / r['elapsed']:.0%}"
                    if r.get("runq") is not None and r["elapsed"]
                    else "-",
                )
                + (
                    "; Redis busy {:.0%}, runq {:.0%}".format(r["redis_busy"], r["redis_runq"])
                    if "redis_busy" in r
                    else ""
                ),
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in rates.items()}
    cost = {k: statistics.median(v) if v else None for k, v in costs.items()}
    pub_med = {k: statistics.median(v) for k, v in pub_rates.items()}
    print(f"\nmedian of {rounds} round(s):")
    busy = {k: statistics.median(v) if v else None for k, v in busies.items()}
    runq = {k: statistics.median(v) if v else None for k, v in runqs.items()}
    row = "{:<17}{:>12}{:>14}{:>9}{:>12}{:>7}{:>7}  {}"
    print(
        row.format(
            "subscriber", "msg/s", "published/s", "sub/pub", "CPU us/msg", "busy", "runq", ""
        )
    )
    for k in kinds:
        share = med[k] / pub_med[k] if pub_med[k] else 0.0
        print(
            row.format(
                k,
                f"{med[k]:,.0f}",
                f"{pub_med[k]:,.0f}",
                f"{share:.2f}",
                "-" if cost[k] is None else f"{cost[k]:.2f}",
                "-" if busy[k] is None else f"{busy[k]:.0%}",
                "-" if runq[k] is None else f"{runq[k]:.0%}",
                limit_verdict(share, busy[k], runq[k], a.backlog),
            )
        )
    for ours in TXMSG_KINDS:
        if ours not in med:
            continue
        for peer, goal in (
            ("txredisapi", 2.0),
            ("hiredis", 0.8),
            ("redis-py", 1.0),
            ("redis-py-listen", 1.0),
            ("redis-asyncio", 1.0),
        ):
            if peer not in med or not med[peer]:
                continue
            ratio = med[ours] / med[peer]
            line = "{}/{}: rate {:.2f}x".format(ours, peer, ratio)
            if cost.get(peer) and cost.get(ours):
                line += ", CPU {:.2f}x ({} us/msg / {}'s)".format(
                    cost[peer] / cost[ours], peer, ours
                )
            verdict = "met" if ratio >= goal else "NOT met"
            print(line + f" (goal >= {goal}: {verdict})")
    print(
        "sub/pub = subscriber rate / the publishers' rate in the same round; busy = the "
        "subscriber's CPU time / its window; runq = its time runnable but waiting for a "
        "CPU (other processes had it; /proc/self/schedstat).  A subscriber that kept up "
        f"(sub/pub >= {KEPT_UP}) or sat idle > {1 - BUSY:.0%} of its window was waiting "
        "for messages: its rate is only a lower bound.  CPU per message (its own cost, "
        "steadier on a noisy VM) is the figure to compare"
    )


if __name__ == "__main__":
    main()

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Pub/sub delivery rate: txmsg vs raw txredisapi vs redis-py, in one run.

An independent publisher (redis-py, pipelined, in its own process) publishes
N 64-byte messages on a fresh channel to ONE subscriber at a time, each in
its own process:

  - txmsg:      txmsg.redis.PubSub, a callback counting messages;
  - txredisapi: a plain txredisapi SubscriberProtocol subclass counting in
                messageReceived (same settings as txmsg: bytes, no number
                conversion, hiredis parser);
  - redis-py:   a get_message() loop (hiredis parser).

The rate is messages received / (time of last - time of first message).
Rounds alternate the subscribers; the median per subscriber is reported.

    python benchmarks/redis_pubsub.py            # 100k messages, 3 rounds
    python benchmarks/redis_pubsub.py --quick    # 10k messages, 1 round

Needs Redis at $TXMSG_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZE = 64
IDLE = 3.0  # seconds without a message: the subscriber gives up


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
    r = _redis_py()
    payload = b"x" * SIZE
    batch = 1000
    sent = 0
    while sent < count:
        p = r.pipeline(transaction=False)
        n = min(batch, count - sent)
        for _ in range(n):
            p.publish(channel, payload)
        p.execute()
        sent += n


def _report(received: int, first: float | None, last: float | None) -> None:
    elapsed = (last - first) if first is not None and last is not None else 0.0
    print(json.dumps({"received": received, "elapsed": elapsed}), flush=True)


def sub_redis_py(channel: str, count: int) -> None:
    r = _redis_py()
    p = r.pubsub()
    p.subscribe(channel)
    while True:
        m = p.get_message(timeout=5)
        if m and m["type"] == "subscribe":
            break
    print("READY", flush=True)
    received = 0
    first = last = None
    get = p.get_message
    while received < count:
        m = get(timeout=IDLE)
        if m is None:
            break
        if m["type"] == "message":
            if first is None:
                first = time.perf_counter()
            received += 1
    last = time.perf_counter()
    _report(received, first, last)


def _twisted_sub(channel: str, count: int, kind: str) -> None:
    from twisted.internet import defer, reactor, task

    state = {"n": 0, "first": None, "last": None}
    done = defer.Deferred()
    idle = [None]

    def finish() -> None:
        if not done.called:
            done.callback(None)

    def bump() -> None:
        n = state["n"] + 1
        state["n"] = n
        if n == 1:
            state["first"] = time.perf_counter()
        if n >= count:
            state["last"] = time.perf_counter()
            finish()

    def watchdog() -> None:
        # give up when no message arrived for IDLE seconds
        if state["n"] == idle[0]:
            state["last"] = time.perf_counter()
            finish()
        else:
            idle[0] = state["n"]
            reactor.callLater(IDLE, watchdog)

    async def main(_reactor):
        if kind == "txmsg":
            from txmsg.redis import PubSub

            ps = PubSub(reactor=reactor)
            ps.startService()
            sub = ps.subscribe(channel, lambda m: bump())
            await sub.when_active()
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
        reactor.callLater(IDLE, watchdog)
        await done
        _report(state["n"], state["first"], state["last"])

    task.react(lambda r: defer.Deferred.fromCoroutine(main(r)))


ROLES = {
    "txmsg": lambda ch, n: _twisted_sub(ch, n, "txmsg"),
    "txredisapi": lambda ch, n: _twisted_sub(ch, n, "txredisapi"),
    "redis-py": sub_redis_py,
    "publish": publisher,
}


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
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def one_round(kind: str, count: int) -> dict:
    channel = "txmsg:bench:" + uuid.uuid4().hex
    sub = _child(kind, channel, count)
    line = sub.stdout.readline().strip()
    if line != "READY":
        sub.kill()
        raise SystemExit(f"{kind} subscriber failed to start: {line!r}")
    pub = _child("publish", channel, count)
    pub.wait(timeout=120)
    out, _ = sub.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    result["rate"] = (
        result["received"] / result["elapsed"] if result["elapsed"] else 0.0
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k messages, 1 round")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.role:
        ROLES[a.role](a.args[0], int(a.args[1]))
        return
    count = a.count or (10_000 if a.quick else 100_000)
    rounds = a.rounds or (1 if a.quick else 3)
    kinds = ["txmsg", "txredisapi", "redis-py"]
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    print(f"{count} messages of {SIZE} bytes, {rounds} round(s)")
    for i in range(rounds):
        order = kinds[i % 3 :] + kinds[: i % 3]
        for kind in order:
            r = one_round(kind, count)
            rates[kind].append(r["rate"])
            print(
                "  round {} {:<10} received {:>7}/{} in {:6.3f} s: {:>9,.0f} msg/s".format(  # noqa: E501
                    i + 1, kind, r["received"], count, r["elapsed"], r["rate"]
                ),
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("median msg/s: " + ", ".join(f"{k} {med[k]:,.0f}" for k in kinds))
    print(
        "ratio txmsg/txredisapi = {:.2f} (goal >= 0.9); txmsg/redis-py = {:.2f} "
        "(goal > 1)".format(
            med["txmsg"] / med["txredisapi"], med["txmsg"] / med["redis-py"]
        )
    )


if __name__ == "__main__":
    main()

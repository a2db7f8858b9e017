#!/usr/bin/env python3
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Dispatch throughput of L{txmsg.events.EventRegistry} against a bare Python
loop over a dict of handler lists doing the same handler calls, in one run.

Run from the repository root:

    PYTHONPATH=. python benchmarks/events.py           # ~2 minutes
    PYTHONPATH=. python benchmarks/events.py --quick   # a few seconds
    PYTHONPATH=. python benchmarks/events.py --only globs   # the glob table only
    PYTHONPATH=. python benchmarks/events.py --profile emit  # or dispatch

The registry runs on the real reactor (under C{task.react}): events are
emitted or dispatched in bursts of C{--batch} (default 1000, what a transport
delivering a burst of messages does), then the benchmark yields to the
reactor until the registry's drain has delivered them all.  Reactor turns are
inside the timed region.  The bare loop calls the handlers directly, with no
reactor involved.

Two bare baselines are printed:
  - C{bare}: the loop passes one prebuilt L{Event} to every call (pure loop
    cost; the strictest baseline);
  - C{bare+Event}: the loop also builds the L{Event} each handler receives,
    as the registry must (the same calls with the same arguments).

A second table measures glob matching at scale: N glob registrations with
distinct prefixes (C{device.<i>.*}, one handler each) and events whose names
are all different (C{device.<k>.reading.<seq>}), so that every event misses
the resolution cache and is matched from scratch, as with per-order or
per-device names.  This table reports the process's CPU time per event (all
of it runs in this process), so that other processes taking the CPU do not
show up as registry cost.  The registry's trie is compared, in the same rounds, with
C{linear}: the same registry resolving names by testing every glob's compiled
regex in turn (the matcher the trie replaced).  The goal is 10,000
registrations within 2x of 10.

Every figure is the median of C{--repeats} interleaved rounds (each round runs
every peer once, so machine noise is shared).
"""

from __future__ import annotations

import argparse
import cProfile
import fnmatch
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import twisted
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed

from txmsg.events import Event, EventRegistry, Registration

NAME = "bench.event"


def make_handlers(count: int, counter: list[int], deferred: bool) -> list[Any]:
    """Build C{count} distinct handlers that bump C{counter[0]}."""

    def make() -> Callable[[Event], Any]:
        if deferred:

            def handler(event: Event) -> Deferred[None]:
                counter[0] += 1
                return succeed(None)

        else:

            def handler(event: Event) -> None:
                counter[0] += 1

        return handler

    return [make() for _ in range(count)]


def _ignore(failure: Any) -> None:
    return None


def bare_loop(handlers: list[Any], n: int, build: bool, deferred: bool) -> float:
    """The peer: a dict of handler lists and a for loop.  Returns seconds."""
    table = {NAME: handlers}
    prebuilt = Event(NAME, 0, "bench")
    start = time.perf_counter()
    if deferred:
        for i in range(n):
            event = Event(NAME, i, "bench") if build else prebuilt
            for handler in table.get(NAME, ()):
                result = handler(event)
                if isinstance(result, Deferred):
                    result.addErrback(_ignore)
    elif build:
        for i in range(n):
            event = Event(NAME, i, "bench")
            for handler in table.get(NAME, ()):
                handler(event)
    else:
        for _ in range(n):
            for handler in table.get(NAME, ()):
                handler(prebuilt)
    return time.perf_counter() - start


async def registry_run(
    reactor: Any,
    handlers: list[Any],
    counter: list[int],
    n: int,
    batch: int,
    mode: str,
) -> float:
    """Send C{n} events through a registry on the real reactor.  Returns seconds."""
    registry = EventRegistry(reactor)
    for handler in handlers:
        registry.add(NAME, handler)
    send = registry.emit if mode == "emit" else registry.dispatch
    expected = counter[0] + n * len(handlers)
    start = time.perf_counter()
    sent = 0
    while sent < n:
        for i in range(sent, min(n, sent + batch)):
            send(NAME, i, source="bench")
        sent = min(n, sent + batch)
        await task.deferLater(reactor, 0, lambda: None)
    while counter[0] < expected:
        await task.deferLater(reactor, 0, lambda: None)
    return time.perf_counter() - start


SCENARIOS = [
    # label, handlers, Deferred-returning, divisor of --events (keeps the
    # slower scenarios' run time comparable)
    ("1 sync handler", 1, False, 1),
    ("10 sync handlers", 10, False, 4),
    ("1 Deferred handler", 1, True, 4),
    ("10 Deferred handlers", 10, True, 20),
]
MODES = ("emit", "dispatch")
ROW = "{:<22}{:>11}{:>12}{:>12}{:>10}{:>8}{:>10}"


async def run(reactor: Any, options: argparse.Namespace) -> None:
    repeats, batch = options.repeats, options.batch
    print(
        f"median of {repeats} interleaved rounds, batch {batch} events per reactor turn, "
        f"Python {sys.version.split()[0]}, Twisted {twisted.__version__}"
    )
    print(
        ROW.format(
            "scenario",
            "peer/mode",
            "events/s",
            "handler/s",
            "us/event",
            "ratio",
            "ratio+Ev",
        )
    )
    for label, count, deferred, divisor in SCENARIOS:
        n = max(1000, options.events // divisor)
        modes = MODES
        counter = [0]
        handlers = make_handlers(count, counter, deferred)
        samples: dict[str, list[float]] = {}
        for _ in range(repeats):  # interleave to share machine noise fairly
            for key, build in (("bare", False), ("bare+Event", True)):
                seconds = bare_loop(handlers, n, build, deferred)
                samples.setdefault(key, []).append(seconds)
            for mode in modes:
                seconds = await registry_run(reactor, handlers, counter, n, batch, mode)
                samples.setdefault(mode, []).append(seconds)
        timings = {key: statistics.median(values) for key, values in samples.items()}
        for key in ("bare", "bare+Event") + modes:
            seconds = timings[key]
            ratio = seconds / timings["bare"]
            ratio_ev = seconds / timings["bare+Event"]
            print(
                ROW.format(
                    label,
                    key,
                    f"{n / seconds:,.0f}",
                    f"{n * count / seconds:,.0f}",
                    f"{seconds / n * 1e6:.2f}",
                    f"{ratio:.2f}",
                    f"{ratio_ev:.2f}",
                )
            )
    print(
        "ratio = time / bare loop (prebuilt event); ratio+Ev = time / bare loop "
        "that builds the Event"
    )


class LinearRegistry(EventRegistry):
    """
    The registry with the matcher the trie replaced: every glob
    registration's compiled regex tried in turn (the peer of the glob table).
    """

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor)
        self._linear: list[tuple[Any, Registration]] = []

    def add(self, pattern: str, handler: Any, **options: Any) -> Registration:
        reg = super().add(pattern, handler, **options)
        self._linear.append((re.compile(fnmatch.translate(pattern)).match, reg))
        return reg

    def _matching_globs(self, name: str) -> list[Registration]:
        return [reg for match, reg in self._linear if reg.active and match(name)]


GLOB_COUNTS = (10, 100, 1000, 10_000)


async def glob_run(reactor: Any, kind: str, globs: int, n: int, batch: int) -> float:
    """
    Emit C{n} events with distinct names to a registry holding C{globs}
    glob registrations; every event matches exactly one.  Returns this
    process's CPU seconds (everything runs in it, and the reactor never
    sleeps meanwhile), which time spent preempted by other processes does
    not inflate.
    """
    counter = [0]

    def handler(event: Event) -> None:
        counter[0] += 1

    registry = EventRegistry(reactor) if kind == "trie" else LinearRegistry(reactor)
    for i in range(globs):
        registry.add(f"device.{i}.*", handler)
    names = [f"device.{k % globs}.reading.{k}" for k in range(n)]
    start = time.process_time()
    for first in range(0, n, batch):
        for name in names[first : first + batch]:
            registry.emit(name, None, source="bench")
        await task.deferLater(reactor, 0, lambda: None)
    while counter[0] < n:
        await task.deferLater(reactor, 0, lambda: None)
    seconds = time.process_time() - start
    assert counter[0] == n, (kind, globs, counter[0], n)
    return seconds


async def run_globs(reactor: Any, options: argparse.Namespace) -> None:
    """The glob-matching table: trie vs linear scan, 10 to 10,000 globs."""
    n = max(2000, options.events // 10)
    print(
        f"\nglob registrations at scale: every event name distinct (a cache miss), "
        f"one handler matches; process CPU time, median of {options.repeats} interleaved "
        f"rounds, {n:,} events (linear: fewer at 1,000+ globs)"
    )
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(options.repeats):
        for globs in GLOB_COUNTS:
            for kind in ("trie", "linear"):
                # the linear scan costs ~0.15 us per glob: keep its rounds short
                count = n if kind == "trie" else max(200, min(n, 2_000_000 // globs))
                seconds = await glob_run(reactor, kind, globs, count, options.batch)
                samples.setdefault((kind, globs), []).append(seconds / count)
    per_event = {key: statistics.median(values) for key, values in samples.items()}
    row = "{:<10}{:>16}{:>16}{:>12}{:>14}"
    print(row.format("globs", "trie us/event", "linear us/event", "linear/trie", "trie vs 10"))
    for globs in GLOB_COUNTS:
        trie, linear = per_event[("trie", globs)], per_event[("linear", globs)]
        print(
            row.format(
                f"{globs:,}",
                f"{trie * 1e6:.2f}",
                f"{linear * 1e6:.2f}",
                f"{linear / trie:.1f}x",
                f"{trie / per_event[('trie', GLOB_COUNTS[0])]:.2f}x",
            )
        )
    ratio = per_event[("trie", 10_000)] / per_event[("trie", 10)]
    print(
        f"10,000 globs cost {ratio:.2f}x 10 globs with the trie (goal: <= 2x); "
        f"the linear scan: {per_event[('linear', 10_000)] / per_event[('linear', 10)]:.0f}x"
    )


def profile(reactor: Any, options: argparse.Namespace) -> Deferred[None]:
    """cProfile C{options.profile} with 1 and 10 sync handlers."""
    profiler = cProfile.Profile()

    async def body() -> None:
        for count in (1, 10):
            counter = [0]
            handlers = make_handlers(count, counter, False)
            profiler.enable()
            await registry_run(
                reactor,
                handlers,
                counter,
                options.events,
                options.batch,
                options.profile,
            )
            profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)

    return Deferred.fromCoroutine(body())


def main(reactor: Any, *argv: str) -> Deferred[None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument(
        "--only", choices=("handlers", "globs"), help="run one of the two tables only"
    )
    parser.add_argument(
        "--profile",
        choices=("emit", "dispatch"),
        help="cProfile the registry's emit() or dispatch() path instead",
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.events, options.repeats = 20_000, 1
    if options.profile:
        return profile(reactor, options)

    async def both() -> None:
        if options.only != "globs":
            await run(reactor, options)
        if options.only != "handlers":
            await run_globs(reactor, options)

    return Deferred.fromCoroutine(both())


if __name__ == "__main__":
    task.react(main, sys.argv[1:])

# -*- test-case-name: txmsg.test.test_dashboard_history -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The dashboard's own memory of each queue: a ring buffer of samples (depth,
consumers, dead letters, rates), from which the charts and rates are drawn.
Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["QueueHistory", "QueueSample"]


@dataclass(frozen=True)
class QueueSample:
    """
    One reading of a queue.

    @ivar time: POSIX seconds.
    @ivar ready: messages waiting to be delivered (L{None}: unknown).
    @ivar unacked: delivered, not yet acked (L{None}: unknown, which it is
        without the management API).
    @ivar consumers: consumers attached.
    @ivar dead: messages in its dead-letter queue (L{None}: no such queue).
    @ivar in_rate: messages published per second, as the broker reports it
        (management API only).
    @ivar out_rate: messages acked per second, likewise.
    """

    time: float
    ready: int | None
    unacked: int | None = None
    consumers: int | None = None
    dead: int | None = None
    in_rate: float | None = None
    out_rate: float | None = None

    @property
    def depth(self) -> int | None:
        """
        Ready plus unacked (ready alone when unacked is unknown).
        """
        if self.ready is None:
            return None
        return self.ready + (self.unacked or 0)


class QueueHistory:
    """
    The last C{size} samples of one queue, oldest first.
    """

    def __init__(self, name: str, size: int = 720) -> None:
        """
        @param name: the queue.
        @param size: samples kept (720 at one every 5 s is an hour).
        """
        self.name = name
        self._samples: deque[QueueSample] = deque(maxlen=max(2, size))

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[QueueSample]:
        return iter(self._samples)

    def add(self, sample: QueueSample) -> None:
        """
        Append a sample; one older than the newest is ignored (a clock step).
        """
        if self._samples and sample.time < self._samples[-1].time:
            return
        self._samples.append(sample)

    @property
    def latest(self) -> QueueSample | None:
        """
        The newest sample, if any.
        """
        return self._samples[-1] if self._samples else None

    def net_rate(self, window: float = 60.0) -> float | None:
        """
        How fast the depth changed over the last C{window} seconds, per
        second: positive when the queue grows, negative when it drains.
        """
        latest = self.latest
        if latest is None or latest.depth is None:
            return None
        base = None
        for s in reversed(self._samples):
            if s.depth is not None and s is not latest:
                base = s
                if latest.time - s.time >= window:
                    break
        if base is None or latest.time <= base.time:
            return None
        return (latest.depth - (base.depth or 0)) / (latest.time - base.time)

    def points(self, since: float | None = None) -> list[dict[str, Any]]:
        """
        The samples (newer than C{since}) as JSON-able dicts for a chart.
        """
        return [
            dict(asdict(s), depth=s.depth) for s in self._samples if since is None or s.time > since
        ]

    def summary(self) -> dict[str, Any]:
        """
        The newest figures and the net rate, for the overview.
        """
        latest = self.latest
        row: dict[str, Any] = {"queue": self.name, "net_rate": self.net_rate()}
        if latest is None:
            row.update(
                time=None,
                ready=None,
                unacked=None,
                consumers=None,
                dead=None,
                in_rate=None,
                out_rate=None,
                depth=None,
            )
        else:
            row.update(asdict(latest), depth=latest.depth)
        return row

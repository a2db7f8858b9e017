# -*- test-case-name: txmsg.test.test_worker_handles -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Queue order in the memory broker: priority queues (C{x-max-priority}) as
RabbitMQ keeps them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["insert"]


def insert(ready: deque[Any], msg: Any, max_priority: Any = None, front: bool = False) -> None:
    """
    Queue C{msg} (a message with C{properties.priority}) in C{ready}: at
    the back (C{front}: the head, as a requeue does) of its priority when
    the queue has a C{max_priority} (a higher priority first, priorities
    above the maximum counted as the maximum), else of the whole queue.
    """
    if not max_priority:
        ready.appendleft(msg) if front else ready.append(msg)
        return
    top = int(max_priority)

    def level(m: Any) -> int:
        return min(m.properties.priority or 0, top)

    mine = level(msg)
    for i, other in enumerate(ready):
        if level(other) < mine or (front and level(other) == mine):
            ready.insert(i, msg)
            return
    ready.append(msg)

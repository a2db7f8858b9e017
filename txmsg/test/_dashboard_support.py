# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What the dashboard's unit tests share: an in-memory broker with a work
queue and dead letters, and rendering a resource with C{DummyRequest}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.web.resource import getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from txmsg.testing import MemoryBroker


class Broker:
    """
    A L{MemoryBroker} with queue C{jobs} and C{jobs.dead}, and a started
    connection to it.
    """

    def __init__(self, clock: Clock | None = None, queue: str = "jobs") -> None:
        self.clock = clock or Clock()
        self.broker = MemoryBroker(self.clock)
        self.queue = queue
        self.broker.declare_queue(queue)
        self.broker.declare_queue(queue + ".dead")
        self.amqp = self.broker.connection(reactor=self.clock)
        self.amqp.startService()
        self.settle()

    def settle(self, turns: int = 20) -> None:
        """
        Let everything pending on the clock run.
        """
        for _ in range(turns):
            self.clock.advance(0)

    def dead_letter(self, task_id: str, *, task: str = "add", reason: str = "failed") -> None:
        """
        Put a dead txmsg task into the dead-letter queue.
        """
        self.broker.publish(
            "",
            self.queue + ".dead",
            json.dumps({"task": task, "id": task_id, "args": [1], "kwargs": {}}),
            message_id=task_id,
            headers={
                "x-txmsg-reason": reason,
                "x-txmsg-queue": self.queue,
                "x-txmsg-error-type": "ValueError",
                "x-txmsg-error-message": "boom <b>",
                "x-txmsg-attempts": 4,
                "other": "kept",
            },
        )

    def stop(self) -> None:
        """
        Stop the connection.
        """
        self.amqp.stopService()
        self.settle()


def request(
    root: Any,
    path: bytes,
    *,
    method: bytes = b"GET",
    args: dict[bytes, list[bytes]] | None = None,
    headers: dict[bytes, bytes] | None = None,
    settle: Any = None,
) -> DummyRequest:
    """
    Render C{path} (no leading slash) of C{root}; C{settle()} lets
    asynchronous renders finish.  The request is returned finished (its
    C{written}, C{responseCode}, C{responseHeaders} hold the answer).
    """
    req = DummyRequest(path.split(b"/"))
    req.method = method
    req.args = dict(args or {})
    for name, value in (headers or {}).items():
        req.requestHeaders.setRawHeaders(name, [value])
    resource = getChildForRequest(root, req)
    body = resource.render(req)
    if body is NOT_DONE_YET:
        if settle is not None:
            settle()
    else:
        req.write(body)
        req.finish()
    return req


def body(req: DummyRequest) -> bytes:
    """
    What was written.
    """
    return b"".join(req.written)


def code(req: DummyRequest) -> int:
    """
    The response code (200 when none was set).
    """
    return req.responseCode or 200

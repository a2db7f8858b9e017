# -*- test-case-name: txmsg.test.test_worker_cli,txmsg.test.test_testing -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Submitting tasks from code.

    client = TaskClient(amqp)                    # an AMQPConnection
    task_id = await client.submit("add", (2, 3))                 # fire and forget
    result = await client.submit("add", (2, 3), wait=True)       # 5, or TaskFailed
    task_id = await client.submit("add", (2, 3), countdown=90)   # runs in 90 s
    task_id = await client.submit("add", (2, 3), eta=time.time() + 3600)

Without C{wait}, C{submit} fires with the task id once the broker confirmed
the (persistent) message.  With C{wait}, it sends the task with a C{reply_to}
and fires with the task's result, or fails with L{TaskFailed} (the task
raised, was dead-lettered or was unknown) or L{txmsg.amqp.RPCTimeout}.

C{countdown} (seconds) or C{eta} (a UNIX time) makes the task wait in the
broker first (L{txmsg.amqp.delayed}, through the client's C{delays}: classic
delay levels unless you set another L{DelayedDelivery}); it is delivered no
earlier than that and within about a second after.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred

from txmsg.amqp.connection import AMQPConnection
from txmsg.amqp.delayed import DelayedDelivery
from txmsg.amqp.rpc import RPCClient
from txmsg.worker.envelope import CONTENT_TYPE, Task, decode_result, encode_task, new_task_id

__all__ = ["TaskClient", "TaskFailed"]


class TaskFailed(Exception):
    """
    A task's reply said it failed.

    @ivar task_id: the task id.
    @ivar error_type: the exception type name (e.g. C{"ZeroDivisionError"},
        C{"UnknownTask"}, C{"TaskTimeout"}).
    @ivar message: the exception message.
    """

    def __init__(self, task_id: str, error_type: str, message: str) -> None:
        super().__init__("task {} failed: {}: {}".format(task_id, error_type, message))
        self.task_id = task_id
        self.error_type = error_type
        self.message = message


class TaskClient:
    """
    Submit v1 tasks over an L{txmsg.amqp.AMQPConnection}.
    """

    def __init__(
        self,
        amqp: AMQPConnection,
        *,
        queue: str = "tasks",
        timeout: float = 30.0,
        results: Any = None,
    ) -> None:
        """
        @param amqp: the connection.
        @param queue: the default work queue.
        @param timeout: the default seconds to wait for a confirm or a result.
        @param results: a L{txmsg.worker.results.RedisResultStore}: each task
            is recorded there as C{pending} as it is published.
        """
        self.amqp = amqp
        self.queue = queue
        self.timeout = timeout
        self.results = results
        self._rpc: Any = None
        #: The delayed delivery C{countdown} and C{eta} go through (classic
        #: levels; set another for quorum ones).
        self.delays = DelayedDelivery(amqp)

    def _rpc_client(self) -> Any:
        if self._rpc is None:
            self._rpc = RPCClient(self.amqp, timeout=self.timeout)
        return self._rpc

    def submit(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
        task_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        countdown: float | None = None,
        eta: float | None = None,
    ) -> Deferred[Any]:
        """
        Send one task.

        @param task: the task name.
        @param args: positional arguments (JSON-serializable).
        @param kwargs: keyword arguments (JSON-serializable).
        @param queue: the work queue (default: the client's).
        @param wait: wait for and return the result.
        @param timeout: seconds (default: the client's).
        @param task_id: the id (default: a fresh one).
        @param headers: message headers (e.g. C{x-txmsg-once}).
        @param countdown: deliver it no earlier than this many seconds from
            now (not with C{wait}).
        @param eta: deliver it no earlier than this UNIX time (not with
            C{wait}, nor with C{countdown}).
        @return: a Deferred firing with the task id, or with the result when
            C{wait}.
        @raise TypeError: at once, when an argument is not JSON-serializable.
        @raise ValueError: at once, for C{countdown} with C{eta} or C{wait}.
        """
        delayed = countdown is not None or eta is not None
        if delayed and (wait or (countdown is not None and eta is not None)):
            raise ValueError("countdown and eta exclude each other and wait=True")
        message = Task(task, tuple(args), dict(kwargs or {}), task_id or new_task_id())
        body = encode_task(message)
        queue = queue or self.queue
        timeout = self.timeout if timeout is None else timeout
        if self.results is not None:
            self.results.submitted(message.id, task)
        if delayed:
            d = self.delays.publish(
                queue,
                body,
                countdown or 0.0,
                eta=eta,
                content_type=CONTENT_TYPE,
                message_id=message.id,
                headers=dict(headers) if headers else None,
                timeout=timeout,
            )
            return d.addCallback(lambda _: message.id)
        if not wait:
            d = self.amqp.publish(
                "",
                queue,
                body,
                content_type=CONTENT_TYPE,
                message_id=message.id,
                headers=dict(headers) if headers else None,
                timeout=timeout,
            )
            return d.addCallback(lambda _: message.id)

        def replied(reply: bytes) -> Any:
            result = decode_result(reply)
            if not result.ok:
                raise TaskFailed(
                    message.id, result.error_type or "Error", result.error_message or ""
                )
            return result.result

        d = self._rpc_client().call(
            queue,
            body,
            timeout,
            content_type=CONTENT_TYPE,
            message_id=message.id,
            delivery_mode=2,
            headers=dict(headers) if headers else None,
        )
        return d.addCallback(replied)

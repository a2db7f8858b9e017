# -*- test-case-name: txmsg.test.test_worker_cli,txmsg.test.test_testing -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Submitting tasks from code: L{TaskClient}.

    client = TaskClient(amqp)                    # on an AMQPConnection you run
    client = await TaskClient.connect()          # a script: its own connection
    client.setServiceParent(application)         # or a service child of an app

    ref = await client.send("add", (2, 3), countdown=10, priority=5)  # TaskRef
    result = await client.call("add", (2, 3), timeout=30)             # 5, or TaskFailed
    task_id = await client.submit("add", (2, 3))                      # the v1 API
    task_id = await client.submit("add", (2, 3), countdown=90)        # runs in 90 s
    tasks.bind(client); await add.send(2, 3)                          # typed handles

Sending fires once the broker confirmed the (persistent) message.  C{call}
(or C{submit(..., wait=True)}) sends the task with a C{reply_to} and fires
with the task's result, or fails with L{TaskFailed} (the task raised, was
dead-lettered or was unknown) or L{txmsg.amqp.RPCTimeout}.

C{countdown} (seconds) or C{eta} (a UNIX time) makes the task wait in the
broker first (L{txmsg.amqp.delayed}, through the client's C{delays}: classic
delay levels unless you set another L{DelayedDelivery}); it is delivered no
earlier than that and within about a second after.  With C{send}, the ETA
also travels in the task (envelope v2), so a worker never runs it early.

With a C{redis://} (C{rediss://}, C{unix://}) C{url}, the client sends to
workers on Redis Streams (C{--broker redis://...}) instead: each task is
added to its queue's stream, its priority level's stream, or (with a
countdown or ETA) the queue's delay set, which the workers move into the
stream when due.  C{call} and C{submit(..., wait=True)} then need a
C{results} store: they send the task and wait for its result there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred

from txmsg._reactor import maybe_global_reactor
from txmsg.amqp.connection import AMQPConnection
from txmsg.amqp.delayed import DelayedDelivery
from txmsg.amqp.rpc import RPCClient
from txmsg.redis import RedisService
from txmsg.worker._client_redis import RedisTaskSender, add_task, is_redis_url
from txmsg.worker.envelope import CONTENT_TYPE, Task, decode_result, encode_task, new_task_id
from txmsg.worker.handles import NoResultStore, TaskFailed, TaskRef
from txmsg.worker.results import RedisResultStore
from txmsg.worker.signature import resolve_times

__all__ = ["TaskClient", "TaskFailed"]


def _priority(priority: int | None) -> dict[str, Any]:
    if priority is None:
        return {}
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255:
        raise ValueError("priority must be an integer from 0 to 255, not {!r}".format(priority))
    return {"priority": priority}


class TaskClient(MultiService):
    """
    Submit tasks over an L{txmsg.amqp.AMQPConnection}, or to workers on
    Redis Streams when C{url} is a Redis URL.

    An C{IService}: when it made its own connection (no C{amqp} given), that
    connection is its child, started and stopped with it.

    @ivar redis: with a Redis C{url}, the connection tasks go through (and
        C{amqp} is L{None}).
    """

    def __init__(
        self,
        amqp: AMQPConnection | None = None,
        *,
        queue: str = "tasks",
        timeout: float = 30.0,
        url: str | None = None,
        results: Any = None,
        reactor: Any = None,
    ) -> None:
        """
        @param amqp: the connection; L{None}: a new one to C{url} (default
            C{$TXMSG_AMQP_URL}), owned by this client.
        @param url: an C{amqp(s)://} URL, or a C{redis://} one: send to
            workers started with C{--broker} that URL.
        @param queue: the default work queue.
        @param timeout: the default seconds to wait for a confirm or a result.
        @param results: a results store (L{txmsg.worker.results.RedisResultStore},
            an L{txmsg.worker.result_store.IResultStore}), or the Redis URL of
            one (as the worker's C{--results}; its connection is then a child
            of this client): each task is recorded there as C{pending} as it
            is published, and the L{TaskRef}s this client returns read it;
            L{None}: they cannot report a status.
        @param reactor: the clock C{countdown} and C{expires} count from
            (default: the connection's reactor).
        """
        super().__init__()
        self.redis: RedisTaskSender | None = None
        if amqp is None and is_redis_url(url):
            self.redis = RedisTaskSender(str(url), reactor=reactor)
            self.redis.setName("redis")
            self.redis.setServiceParent(self)
        elif amqp is None:
            amqp = AMQPConnection(url, reactor=reactor, connection_name="txmsg-client")
            amqp.setName("amqp")
            amqp.setServiceParent(self)
        if isinstance(results, str):
            redis = RedisService(results, reactor=reactor)
            redis.setName("results")
            redis.setServiceParent(self)
            results = RedisResultStore(redis, clock=reactor)
        self.amqp = amqp
        self.queue = queue
        self.timeout = timeout
        self.results = results
        self._reactor = reactor
        self._rpc: Any = None
        #: The delayed delivery C{countdown} and C{eta} go through (classic
        #: levels; set another for quorum ones); L{None} on Redis.
        self.delays = DelayedDelivery(amqp) if amqp is not None else None

    @property
    def clock(self) -> Any:
        """The clock C{countdown} and C{expires} count from."""
        if self._reactor is not None:
            return self._reactor
        if self.amqp is not None:
            return self.amqp.reactor
        return maybe_global_reactor(None)

    @classmethod
    async def connect(
        cls, url: str | None = None, *, timeout: float = 30.0, **kwargs: Any
    ) -> TaskClient:
        """
        A started client with its own connection, once the broker is
        connected: C{client = await TaskClient.connect()}; stop it with
        C{await client.stopService()}.

        @param kwargs: as for L{TaskClient}.
        """
        client = cls(url=url, timeout=timeout, **kwargs)
        client.startService()
        try:
            await (client.redis or client._amqp()).when_ready(timeout)
        except BaseException:
            await client.stopService()
            raise
        return client

    def _amqp(self) -> AMQPConnection:
        assert self.amqp is not None  # without one, self.redis sends
        return self.amqp

    def _delays(self) -> DelayedDelivery:
        assert self.delays is not None
        return self.delays

    def _rpc_client(self) -> Any:
        if self._rpc is None:
            self._rpc = RPCClient(self._amqp(), timeout=self.timeout)
        return self._rpc

    def send(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: Any = None,
        expires: Any = None,
        priority: int | None = None,
        task_id: str | None = None,
        queue: str | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> Deferred[TaskRef[Any]]:
        """
        Send one task by name.

        @param countdown: run it no earlier than this many seconds from now.
        @param eta: run it no earlier than this Unix time or aware datetime.
        @param expires: do not run it after this many seconds from now (or
            this aware datetime): it is dead-lettered as C{expired}.
        @param priority: 0 to 255, for a queue the worker declared with
            C{--max-priority}; higher runs first.
        @return: a Deferred firing with a L{TaskRef} once confirmed.
        @raise TypeError: at once, when an argument is not JSON-serializable.
        @raise ValueError: at once, for contradictory or invalid options.
        """
        message = self._task(task, args, kwargs, task_id, countdown, eta, expires)
        message = replace(message, parent_id=parent_id, root_id=root_id)
        body = encode_task(message)
        self._submitted(message)
        fields = dict(content_type=CONTENT_TYPE, message_id=message.id, **_priority(priority))
        if self.redis is not None:
            d = self._add(message, queue, priority)
        elif message.eta is not None and message.eta > self.clock.seconds():
            wait = message.eta - self.clock.seconds()
            d = self._delays().publish(
                queue or self.queue, body, wait, timeout=self.timeout, **fields
            )
        else:
            d = self._amqp().publish("", queue or self.queue, body, timeout=self.timeout, **fields)
        return d.addCallback(lambda _: TaskRef(message.id, task, self.results))

    def call(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        expires: Any = None,
        priority: int | None = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> Deferred[Any]:
        """
        Run one task and wait for its result (RPC over direct reply-to).

        @param timeout: seconds (default: the client's).
        @return: a Deferred firing with the result, or failing with
            L{TaskFailed} or L{txmsg.amqp.RPCTimeout}.
        """
        message = self._task(task, args, kwargs, task_id, None, None, expires)
        _priority(priority)
        self._submitted(message)
        return self._call(message, queue, timeout, priority)

    def _add(
        self,
        message: Task,
        queue: str | None,
        priority: int | None,
        headers: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        assert self.redis is not None
        now = self.clock.seconds()
        h = self.redis.handler
        return add_task(h, queue or self.queue, message, now, priority, headers)

    def _call_redis(
        self,
        message: Task,
        queue: str | None,
        timeout: float | None,
        priority: int | None,
        headers: Mapping[str, Any] | None,
    ) -> Deferred[Any]:
        # On Redis the result comes through the results store.
        if self.results is None:
            raise NoResultStore("TaskClient.call() on a Redis broker")
        seconds = self.timeout if timeout is None else timeout
        d = self._add(message, queue, priority, headers)
        ref: TaskRef[Any] = TaskRef(message.id, message.name, self.results)
        return d.addCallback(lambda _: ref.result(seconds))

    def _submitted(self, message: Task) -> None:
        if self.results is not None:
            self.results.submitted(message.id, message.name)

    def _task(
        self,
        task: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        task_id: str | None,
        countdown: Any,
        eta: Any,
        expires: Any,
    ) -> Task:
        when, deadline = resolve_times(self.clock.seconds(), countdown, eta, expires)
        return Task(task, tuple(args), dict(kwargs or {}), task_id or new_task_id(), when, deadline)

    def _call(
        self,
        message: Task,
        queue: str | None,
        timeout: float | None,
        priority: int | None,
        headers: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        if self.redis is not None:
            return self._call_redis(message, queue, timeout, priority, headers)

        def replied(reply: bytes) -> Any:
            result = decode_result(reply)
            if not result.ok:
                raise TaskFailed(
                    message.id, result.error_type or "Error", result.error_message or ""
                )
            return result.result

        d = self._rpc_client().call(
            queue or self.queue,
            encode_task(message),
            self.timeout if timeout is None else timeout,
            content_type=CONTENT_TYPE,
            message_id=message.id,
            delivery_mode=2,
            headers=dict(headers) if headers else None,
            **_priority(priority),
        )
        return d.addCallback(replied)

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
        Send one task (the original API; see L{send} and L{call}).

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
        self._submitted(message)
        if wait:
            return self._call(message, queue, timeout, None, headers)
        if self.redis is not None:
            when, _ = resolve_times(self.clock.seconds(), countdown, eta)
            d = self._add(replace(message, eta=when), queue, None, headers)
            return d.addCallback(lambda _: message.id)
        if delayed:
            d = self._delays().publish(
                queue or self.queue,
                encode_task(message),
                countdown or 0.0,
                eta=eta,
                content_type=CONTENT_TYPE,
                message_id=message.id,
                headers=dict(headers) if headers else None,
                timeout=self.timeout if timeout is None else timeout,
            )
            return d.addCallback(lambda _: message.id)
        d = self._amqp().publish(
            "",
            queue or self.queue,
            encode_task(message),
            content_type=CONTENT_TYPE,
            message_id=message.id,
            headers=dict(headers) if headers else None,
            timeout=self.timeout if timeout is None else timeout,
        )
        return d.addCallback(lambda _: message.id)

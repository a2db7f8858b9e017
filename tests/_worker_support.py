# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for the worker integration tests: C{twistd -n txmsg-worker} as a
subprocess (run from the repository root with this tree on C{PYTHONPATH}, so
the code under test is this worktree's), and a pika C{BlockingConnection}
client (an independent peer) that submits v1 tasks with publisher confirms
and reads replies and dead letters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pika

from tests._amqp_support import ROOT, SHARED_URL, require_broker, unique
from tests._process import TwistdProcess, script, wait_for
from txmsg.worker.retry import RetryPolicy, dead_letter_queue_name

__all__ = [
    "AMQPBroker",
    "Client",
    "Submitter",
    "OneQueueMixin",
    "WorkerProcess",
    "delete_worker_queues",
    "require_broker",
    "unique",
    "worker_env",
]

REDIS_URL = os.environ.get("TXMSG_REDIS_URL") or "redis://127.0.0.1:6379/0"


def worker_env(**extra: str) -> dict[str, str]:
    """
    The environment of worker subprocesses: this tree first on the path.
    """
    environ = dict(os.environ)
    environ["PYTHONPATH"] = ROOT
    environ.pop("TXMSG_AMQP_URL", None)
    environ.pop("TXMSG_REDIS_URL", None)
    environ.update(extra)
    return environ


class WorkerProcess(TwistdProcess):
    """
    C{twistd -n txmsg-worker} on one or more queues, started in the repository
    root; ready when it consumes its last queue.
    """

    def __init__(
        self,
        queues: Sequence[str],
        *args: str,
        tasks: str | None = "tests._worker_tasks",
        url: str = SHARED_URL,
        ready: str | None = None,
        broker_args: Sequence[str] | None = None,
    ) -> None:
        argv = ["--amqp", url] if broker_args is None else list(broker_args)
        if tasks:
            argv += ["--tasks", tasks]
        for queue in queues:
            argv += ["--queue", queue]
        argv += list(args)
        last = queues[-1] if queues else None
        super().__init__("txmsg-worker", argv, ready=ready or "Consuming {} (".format(last))

    def start(self, timeout: float = 30) -> WorkerProcess:
        """
        Start it (cwd: the repository root) and wait for the ready line.
        """
        self.process = subprocess.Popen(
            [script("twistd"), "-n", "--pidfile=", self.plugin] + self.args,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=worker_env(),
        )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    "worker exited with {}:\n{}".format(self.process.returncode, self.log())
                )
            return self.ready in self.log()

        wait_for(ready, timeout, "the worker to be ready")
        return self

    def kill(self) -> None:
        """
        SIGKILL it and reap it.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def assert_running(self) -> None:
        """
        Fail (with the log) if the process has exited.
        """
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                "the worker exited with {}:\n{}".format(self.process.returncode, self.log())
            )


def worker_queue_names(queue: str, retry: RetryPolicy | None = None) -> list[str]:
    """
    A work queue with its dead-letter queue (retries wait in the shared
    delay levels, which stay).
    """
    return [queue, dead_letter_queue_name(queue)]


def delete_worker_queues(
    queues: Iterable[str], retry: RetryPolicy | None = None, url: str = SHARED_URL
) -> None:
    """
    Delete work queues with their companions (missing ones are fine).
    """
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for queue in queues:
            for name in worker_queue_names(queue, retry):
                channel = connection.channel()
                channel.queue_delete(name)
                channel.close()
    finally:
        connection.close()


class Submitter:
    """
    Submitting v1 tasks through C{publish_raw} (each peer has its own).
    """

    def publish_raw(self, queue: str, body: bytes, **properties: Any) -> None:
        raise NotImplementedError

    def submit(
        self,
        queue: str,
        task: str,
        *args: Any,
        task_id: str | None = None,
        reply: bool = True,
        **kwargs: Any,
    ) -> str:
        """
        Submit a v1 task; return its id.
        """
        task_id = task_id or uuid.uuid4().hex
        body = json.dumps({"task": task, "args": list(args), "kwargs": kwargs, "id": task_id})
        self.publish_raw(
            queue,
            body.encode("utf-8"),
            content_type="application/json",
            message_id=task_id,
            correlation_id=task_id if reply else None,
            reply=reply,
        )
        return task_id


class Client(Submitter):
    """
    A blocking pika peer: submits tasks with confirms, collects replies on a
    private reply queue, reads queues.
    """

    def __init__(self, url: str = SHARED_URL) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.reply_queue = self.channel.queue_declare("", exclusive=True).method.queue
        #: (correlation_id, decoded body, arrival time), in arrival order.
        self.replies: list[tuple[str, Any, float]] = []
        self._consuming = False

    def declare(self, queue: str) -> None:
        """
        Declare a work queue as the worker does (durable).
        """
        self.channel.queue_declare(queue, durable=True)

    def publish_raw(
        self,
        queue: str,
        body: bytes,
        *,
        content_type: str | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        reply: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """
        Publish any body (persistent, confirmed, mandatory).
        """
        self.channel.basic_publish(
            "",
            queue,
            body,
            pika.BasicProperties(
                content_type=content_type,
                delivery_mode=2,
                message_id=message_id,
                correlation_id=correlation_id,
                reply_to=self.reply_queue if reply else None,
                headers=headers,
            ),
            mandatory=True,
        )

    def _on_reply(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            data = body
        self.replies.append((properties.correlation_id, data, time.monotonic()))

    def collect(self, n: int, timeout: float) -> list[tuple[str, Any, float]]:
        """
        Wait until at least C{n} replies arrived in all; return them all.
        """
        if not self._consuming:
            self.channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
            self._consuming = True
        deadline = time.monotonic() + timeout
        while len(self.replies) < n:
            if time.monotonic() > deadline:
                raise AssertionError(
                    "{} of {} replies after {}s".format(len(self.replies), n, timeout)
                )
            self.connection.process_data_events(time_limit=0.1)
        return self.replies

    def linger(self, seconds: float) -> None:
        """
        Keep receiving replies for C{seconds} (to catch duplicates).
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.1)

    def count(self, queue: str) -> int:
        """
        Ready messages in C{queue}.
        """
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def consumers(self, queue: str) -> int:
        """
        Consumers of C{queue}.
        """
        return int(self.channel.queue_declare(queue, passive=True).method.consumer_count)

    def get_all(self, queue: str) -> list[tuple[Any, bytes]]:
        """
        Take every ready message from C{queue}: (properties, body) pairs.
        """
        out = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((properties, body))

    def close(self) -> None:
        """
        Close the connection (if still open).
        """
        if self.connection.is_open:
            self.connection.close()


class AMQPBroker:
    """
    What a worker test case runs against: RabbitMQ (this class) or Redis
    Streams (C{tests._streams_support.RedisBroker}, mixed in first).
    """

    broker = "amqp"

    def make_client(self) -> Any:
        """The test's peer."""
        return Client()

    def broker_args(self) -> list[str] | None:
        """The worker's broker options (L{None}: C{--amqp} as given)."""
        return None

    def delete_queues(self, queues: Iterable[str], retry: RetryPolicy | None = None) -> None:
        """Delete work queues with their companions."""
        delete_worker_queues(queues, retry)

    def require(self) -> None:
        """Fail clearly when the broker is not there."""
        require_broker()


class OneQueueMixin(AMQPBroker):
    """
    For C{TestCase}s: a unique, cleaned-up work queue C{self.queue} (declared
    by C{self.client}) and C{self.worker(*args)} to start workers on it.
    """

    queue_prefix = "txmsg-worker-test"

    def setUp(self) -> None:
        self.require()
        self.queue = unique(self.queue_prefix)
        self.addCleanup(self.delete_queues, [self.queue])  # type: ignore[attr-defined]
        self.client = self.make_client()
        self.addCleanup(self.client.close)  # type: ignore[attr-defined]
        self.client.declare(self.queue)

    def worker(self, *args: str, start: bool = True) -> WorkerProcess:
        """
        A worker on C{self.queue} (killed in cleanup), started unless told.
        """
        w = WorkerProcess([self.queue], *args, broker_args=self.broker_args())
        self.addCleanup(w.cleanup)  # type: ignore[attr-defined]
        return w.start() if start else w


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """
    L{wait_for} with a coarser poll (queue checks are round trips).
    """
    wait_for(predicate, timeout, what, interval=0.1)


def elapsed_since(start: float) -> float:
    """
    Seconds since C{start} (a C{time.monotonic()} value).
    """
    return time.monotonic() - start

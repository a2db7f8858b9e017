# -*- test-case-name: txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The AMQP contract: publisher, consumer, RPC and worker behaviour that must
hold on the in-memory broker and on RabbitMQ alike.

A concrete test case mixes L{AMQPContract} with a runner from
L{txmsg.test._contract_base} and provides C{make_connection()} (a started
L{txmsg.amqp.AMQPConnection}, stopped after the test), C{drop(connection)}
(the broker closes that connection) and C{forget_queue(name)} (delete it
after the test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pika import BasicProperties
from twisted.internet.defer import Deferred

from txmsg.amqp import (
    AckWith,
    Binding,
    DeadLetter,
    ErrorPolicy,
    Exchange,
    Publish,
    PublishLost,
    PublishReturned,
    Queue,
    RetryLater,
    RPCClient,
    RPCServer,
    RPCUnroutable,
    queue_arguments,
)
from txmsg.test._contract_base import ContractCase, contract
from txmsg.worker import RetryPolicy, TaskCatalog
from txmsg.worker.client import TaskClient, TaskFailed
from txmsg.worker.retry import dead_letter_queue_name


class AMQPContract(ContractCase):
    """Publisher / consumer / RPC routing and ack semantics."""

    if TYPE_CHECKING:  # provided by each runner's test case

        def make_connection(self, **kw: Any) -> Any: ...
        async def drop(self, conn: Any) -> None: ...
        def forget_queue(self, name: str) -> None: ...
        def forget_exchange(self, name: str) -> None: ...

    async def connect(self, **kw: Any) -> Any:
        conn = self.make_connection(**kw)
        await self.wait(conn.when_ready(), 20)
        return conn

    async def declare_queue(self, conn: Any, name: str, **kw: Any) -> Queue:
        self.forget_queue(name)
        q = Queue(name, durable=False, **kw)
        failures = await self.wait(conn.declare(q))
        self.assertEqual(failures, [])
        return q

    async def consume(self, conn: Any, queue: Any, handler: Any, **kw: Any) -> Any:
        c = conn.consume(queue, handler, **kw)
        await self.wait(c.when_consuming())
        return c

    async def assert_empty(self, conn: Any, name: str) -> None:
        """Queue C{name} holds no ready message (a passive declare)."""
        channel = await self.wait(conn.open_channel())
        frame = await self.wait(channel.queue_declare(name, passive=True))
        self.assertEqual(frame.method.message_count, 0)
        channel.close()

    async def routed(
        self, exchange_type: str, bindings: dict, keys: list, headers: list | None = None
    ) -> dict:
        """Declare an exchange, queues bound with C{bindings}, publish C{keys}."""
        conn = await self.connect()
        ex = self.unique("ex")
        self.forget_exchange(ex)
        got: dict = {}
        for label, binding_args in bindings.items():
            qname = self.unique("q-" + label)
            q = await self.declare_queue(conn, qname)
            key, args = binding_args if isinstance(binding_args, tuple) else (binding_args, {})
            self.assertEqual(
                await self.wait(
                    conn.declare(
                        Exchange(ex, exchange_type, durable=False), Binding(q, ex, key, args)
                    )
                ),
                [],
            )
            got[label] = []
            await self.consume(conn, q, lambda d, label=label: got[label].append(d.body))
        for i, key in enumerate(keys):
            h = headers[i] if headers else None
            await self.wait(conn.publish(ex, key, key.encode(), headers=h, mandatory=False))
        await self.sleep(0.3)
        return got

    async def work_and_dead_queues(self) -> tuple:
        """A connection, a work queue and the dead-letter queue it rejects to."""
        conn = await self.connect()
        dead = await self.declare_queue(conn, self.unique("dead"))
        work = await self.declare_queue(
            conn,
            self.unique("work"),
            arguments=queue_arguments(dead_letter_exchange="", dead_letter_routing_key=dead.name),
        )
        return conn, work, dead

    @contract
    async def test_direct_routing(self) -> None:
        """A direct exchange routes by exact routing key."""
        got = await self.routed(
            "direct", {"a": "info", "b": "error"}, ["info", "error", "debug", "info"]
        )
        self.assertEqual(got, {"a": [b"info", b"info"], "b": [b"error"]})

    @contract
    async def test_fanout_routing(self) -> None:
        """A fanout exchange copies every message to every bound queue."""
        got = await self.routed("fanout", {"a": "", "b": "ignored"}, ["x", "y"])
        self.assertEqual(got, {"a": [b"x", b"y"], "b": [b"x", b"y"]})

    @contract
    async def test_topic_routing(self) -> None:
        """A topic exchange matches C{*} as one word and C{#} as zero or more."""
        got = await self.routed(
            "topic",
            {"star": "*.error", "hash": "kern.#"},
            ["kern.error", "app.error", "kern", "kern.a.b", "app.error.x"],
        )
        self.assertEqual(
            got,
            {"star": [b"kern.error", b"app.error"], "hash": [b"kern.error", b"kern", b"kern.a.b"]},
        )

    @contract
    async def test_headers_routing(self) -> None:
        """A headers exchange matches C{x-match} all / any on header values."""
        got = await self.routed(
            "headers",
            {
                "all": ("", {"x-match": "all", "a": "1", "b": "2"}),
                "any": ("", {"x-match": "any", "a": "1", "b": "2"}),
            },
            ["both", "only-a", "none"],
            headers=[{"a": "1", "b": "2"}, {"a": "1"}, {"c": "3"}],
        )
        self.assertEqual(got, {"all": [b"both"], "any": [b"both", b"only-a"]})

    @contract
    async def test_unroutable(self) -> None:
        """
        An unroutable mandatory publish fails with L{PublishReturned}; a
        non-mandatory one is confirmed (and dropped).
        """
        conn = await self.connect()
        name = self.unique("nobody")
        err = await self.failure_of(conn.publish("", name, b"x"))
        self.assertIsInstance(err, PublishReturned)
        self.assertEqual(err.reply_code, 312)
        self.assertIsNone(await self.wait(conn.publish("", name, b"x", mandatory=False)))

    @contract
    async def test_missing_exchange(self) -> None:
        """
        Publishing to an exchange that does not exist fails with
        L{PublishLost} (the broker closes the channel with 404); the
        publisher recovers for the next publish.
        """
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("after"))
        err = await self.failure_of(conn.publish(self.unique("no-ex"), "k", b"x"))
        self.assertIsInstance(err, PublishLost)
        self.assertEqual(getattr(err.reason, "reply_code", None), 404)
        got: list = []
        await self.consume(conn, q, lambda d: got.append(d.body))
        await self.wait(conn.publish("", q.name, b"fine"))
        await self.eventually(lambda: got == [b"fine"])

    @contract
    async def test_requeue_sets_redelivered(self) -> None:
        """
        A delivery nacked with requeue (L{RetryLater}) comes back with
        C{redelivered} set; the ack then removes it.
        """
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("requeue"))
        seen: list = []

        def handler(d: Any) -> None:
            seen.append((d.body, d.redelivered))
            if not d.redelivered:
                raise RetryLater()

        c = await self.consume(conn, q, handler)
        await self.wait(conn.publish("", q.name, b"m"))
        await self.eventually(lambda: len(seen) == 2 and c.acked == 1)
        self.assertEqual(seen, [(b"m", False), (b"m", True)])
        await self.sleep(0.2)
        self.assertEqual(len(seen), 2)

    @contract
    async def test_dead_letter_after_requeue_once(self) -> None:
        """
        With C{REQUEUE_ONCE} a failing handler sees a message twice; the
        queue's dead-letter exchange then gets it with an C{x-death}
        header of reason C{rejected}.
        """
        conn, work, dead = await self.work_and_dead_queues()
        seen: list = []

        def fail(d: Any) -> None:
            seen.append(d.redelivered)
            raise ValueError("broken handler")

        await self.consume(conn, work, fail, on_error=ErrorPolicy.REQUEUE_ONCE)
        dead_seen: list = []
        await self.consume(conn, dead, dead_seen.append)
        await self.wait(conn.publish("", work.name, b"poison"))
        await self.eventually(lambda: len(dead_seen) == 1)
        self.assertEqual(seen, [False, True])
        death = dead_seen[0].headers["x-death"][0]
        self.assertEqual(
            (death["reason"], death["queue"], death["count"]), ("rejected", work.name, 1)
        )
        self.assertEqual(dead_seen[0].body, b"poison")
        self.flush_errors(ValueError)

    @contract
    async def test_dead_letter_decision(self) -> None:
        """Raising L{DeadLetter} dead-letters at once, without a redelivery."""
        conn, work, dead = await self.work_and_dead_queues()
        seen: list = []

        def reject(d: Any) -> None:
            seen.append(d.body)
            raise DeadLetter()

        await self.consume(conn, work, reject)
        dead_seen: list = []
        await self.consume(conn, dead, lambda d: dead_seen.append(d.body))
        await self.wait(conn.publish("", work.name, b"m"))
        await self.eventually(lambda: dead_seen == [b"m"])
        self.assertEqual(seen, [b"m"])

    @contract
    async def test_prefetch_bounds_unacked(self) -> None:
        """A consumer with prefetch N has at most N deliveries in its handler."""
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("prefetch"))
        pending: list = []

        def slow(d: Any) -> Deferred:
            r: Deferred = Deferred()
            pending.append((d.body, r))
            return r

        c = await self.consume(conn, q, slow, prefetch=2)
        for i in range(5):
            await self.wait(conn.publish("", q.name, str(i)))
        await self.eventually(lambda: len(pending) == 2)
        await self.sleep(0.2)
        self.assertEqual([b for b, _ in pending], [b"0", b"1"])
        pending[0][1].callback(None)
        await self.eventually(lambda: len(pending) == 3)
        self.assertEqual(pending[2][0], b"2")
        while c.acked < 5:
            for _, r in pending:
                if not r.called:
                    r.callback(None)
            await self.sleep(0.05)
        self.assertEqual([b for b, _ in pending], [b"0", b"1", b"2", b"3", b"4"])

    @contract
    async def test_message_ttl_dead_letters(self) -> None:
        """
        Messages expire after the queue's TTL or their own (shorter)
        expiration and are dead-lettered with reason C{expired}.
        """
        conn = await self.connect()
        dead = await self.declare_queue(conn, self.unique("expired"))
        parked = await self.declare_queue(
            conn,
            self.unique("parked"),
            arguments=queue_arguments(
                message_ttl=400, dead_letter_exchange="", dead_letter_routing_key=dead.name
            ),
        )
        got: list = []
        await self.consume(conn, dead, got.append)
        start = self.clock.seconds()
        await self.wait(conn.publish("", parked.name, b"short", expiration="100"))
        await self.wait(conn.publish("", parked.name, b"queue-ttl"))
        await self.eventually(lambda: len(got) == 2, timeout=5)
        self.assertGreaterEqual(self.clock.seconds() - start, 0.35)
        self.assertEqual([d.body for d in got], [b"short", b"queue-ttl"])
        self.assertEqual([d.headers["x-death"][0]["reason"] for d in got], ["expired", "expired"])
        self.assertIsNone(got[0].properties.expiration)

    @contract
    async def test_redelivered_after_connection_loss(self) -> None:
        """
        A delivery left unacked when the consumer's connection is dropped is
        redelivered, flagged C{redelivered}, after the reconnect.
        """
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("lossy"))
        seen: list = []
        stuck: Deferred = Deferred()

        def handler(d: Any) -> Any:
            seen.append(d.redelivered)
            if len(seen) == 1:
                return stuck  # finishes only after the connection is gone
            return None

        c = await self.consume(conn, q, handler)
        await self.wait(conn.publish("", q.name, b"m"))
        await self.eventually(lambda: seen == [False])
        generation = conn.generation
        await self.drop(conn)
        await self.eventually(lambda: conn.generation > generation, timeout=30)
        stuck.callback(None)  # too late: its channel is gone, nothing is acked
        await self.eventually(lambda: seen == [False, True], timeout=30)
        await self.eventually(lambda: c.acked == 1)

    @contract
    async def test_server_named_exclusive_queue(self) -> None:
        """A server-named queue gets an C{amq.gen-} name and receives messages."""
        conn = await self.connect()
        got: list = []
        c = await self.consume(conn, Queue.server_named(), lambda d: got.append(d.body))
        name = c.queue_name
        self.assertTrue(name.startswith("amq.gen-"), name)
        await self.wait(conn.publish("", name, b"hi"))
        await self.eventually(lambda: got == [b"hi"])

    @contract
    async def test_rpc(self) -> None:
        """
        An RPC call gets the server's reply (direct reply-to); a call to a
        queue nobody serves fails with L{RPCUnroutable}.
        """
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("rpc"))
        RPCServer(conn, q, lambda d: str(int(d.body) * 2))
        await self.sleep(0.1)
        client = RPCClient(conn, timeout=10)
        self.assertEqual(await self.wait(client.call(q.name, "21")), b"42")
        err = await self.failure_of(client.call(self.unique("nobody"), "1"))
        self.assertIsInstance(err, RPCUnroutable)

    @contract
    async def test_rpc_reply_queue(self) -> None:
        """RPC works with an exclusive server-named reply queue too."""
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("rpc"))
        RPCServer(conn, q, lambda d: d.body.upper())
        client = RPCClient(conn, direct_reply_to=False, timeout=10)
        self.assertEqual(await self.wait(client.call(q.name, "abc")), b"ABC")

    @contract
    async def test_rpc_transactional_server(self) -> None:
        """
        An RPC server on a transactional consumer answers a client with a
        reply queue of its own (the reply committed with the ack) and one
        using direct reply-to (the reply confirmed, then the ack); nothing
        is left in the request queue.
        """
        conn = await self.connect()
        q = await self.declare_queue(conn, self.unique("rpc-tx"))
        server = RPCServer(conn, q, lambda d: d.body.upper(), transactional=True)
        await self.wait(server.consumer.when_consuming())
        for direct in (False, True):
            client = RPCClient(conn, direct_reply_to=direct, timeout=10)
            self.assertEqual(await self.wait(client.call(q.name, "abc")), b"ABC")
        await self.assert_empty(conn, q.name)

    @contract
    async def test_transactional_reply_with_ack(self) -> None:
        """
        On a transactional consumer a handler's L{AckWith} message and the
        ack are committed together: the reply arrives and nothing is left
        unacked; a reply no queue takes is returned to C{on_return} and the
        ack stands.
        """
        conn = await self.connect()
        work = await self.declare_queue(conn, self.unique("tx-work"))
        replies = await self.declare_queue(conn, self.unique("tx-replies"))
        got: list = []
        returned: list = []

        def handler(d: Any) -> AckWith:
            key = replies.name if d.body != b"lost" else self.unique("nowhere")
            return AckWith((Publish("", key, b"re:" + d.body, BasicProperties()),))

        await self.consume(conn, work, handler, transactional=True, on_return=returned.append)
        await self.consume(conn, replies, lambda d: got.append(d.body))
        for body in (b"a", b"b", b"lost"):
            await self.wait(conn.publish("", work.name, body))
        await self.eventually(lambda: len(got) == 2 and len(returned) == 1)
        self.assertEqual(sorted(got), [b"re:a", b"re:b"])
        self.assertEqual(returned[0].body, b"re:lost")
        await self.assert_empty(conn, work.name)

    @contract
    async def test_move_to_transactions_and_back(self) -> None:
        """
        L{Consumer.set_transactional} while deliveries are in flight, there
        and back: every message is handled exactly once and never marked
        redelivered, what came on the transactional channel can reply with
        its ack (L{AckWith}), and nothing is left in the queue, unacked
        included.
        """
        conn = await self.connect()
        work = await self.declare_queue(conn, self.unique("move-work"))
        replies = await self.declare_queue(conn, self.unique("move-replies"))
        handled: list = []
        got: list = []
        consumer: Any = None

        def handler(d: Any) -> Any:
            handled.append((d.body, d.transactional, d.redelivered))
            if len(handled) == 60:
                consumer.set_transactional(True)
            elif len(handled) == 180:
                consumer.set_transactional(False)
            if d.transactional:
                return AckWith((Publish("", replies.name, d.body, BasicProperties()),))
            return None

        for n in range(240):
            await self.wait(conn.publish("", work.name, str(n).encode()))
        consumer = await self.consume(conn, work, handler, prefetch=20)
        await self.consume(conn, replies, lambda d: got.append(d.body))
        await self.eventually(lambda: len(handled) >= 240 and not consumer.transactional)
        await self.wait(consumer.set_transactional(False))
        await self.eventually(lambda: len(got) == sum(1 for h in handled if h[1]))
        await self.wait(consumer.stop())
        bodies = sorted(int(h[0]) for h in handled)
        self.assertEqual(bodies, list(range(240)))
        self.assertEqual([h for h in handled if h[2]], [])
        modes = [h[1] for h in handled]
        self.assertIn(True, modes[60:200])
        self.assertFalse(modes[0] or modes[-1])
        self.assertEqual(sorted(got), sorted(h[0] for h in handled if h[1]))
        await self.assert_empty(conn, work.name)


class WorkerContract(ContractCase):
    """
    The task worker's retry and dead-letter semantics (txmsg-worker), on the
    same hooks as L{AMQPContract}; C{make_worker(tasks, **kw)} builds a
    L{txmsg.worker.service.WorkerService} on a connection from
    C{make_connection(start=False)}.
    """

    if TYPE_CHECKING:  # from the runner's test case and from AMQPContract

        def make_worker(self, tasks: Any, **kw: Any) -> Any: ...
        def forget_queue(self, name: str) -> None: ...
        async def connect(self, **kw: Any) -> Any: ...
        async def consume(self, conn: Any, queue: Any, handler: Any, **kw: Any) -> Any: ...

    async def start_worker(self) -> tuple:
        tasks = TaskCatalog()
        runs: list = []

        @tasks.task
        def add(x: int, y: int) -> int:
            return x + y

        @tasks.task(retry_for=(ValueError,))
        def boom(*, context: Any) -> None:
            runs.append((context.attempt, context.headers.get("x-txmsg-attempts")))
            raise ValueError("always fails")

        queue = self.unique("tasks")
        for name in (queue, dead_letter_queue_name(queue)):
            self.forget_queue(name)
        worker = self.make_worker(
            tasks,
            queues=[queue],
            name=self.unique("worker"),
            retry=RetryPolicy(max_retries=1, initial_delay=0.2, jitter=0.0),
        )
        worker.startService()
        self.on_cleanup(worker.stopService)
        await self.wait(worker.amqp.when_ready(), 20)
        client_conn = await self.connect()
        return worker, TaskClient(client_conn, queue=queue, timeout=10), queue, runs

    async def dead_letters(self, queue: str, n: int) -> list:
        conn = await self.connect()
        got: list = []
        await self.consume(conn, dead_letter_queue_name(queue), got.append)
        await self.eventually(lambda: len(got) >= n, timeout=10)
        return got

    @contract
    async def test_worker_result(self) -> None:
        """A submitted task's result comes back to a waiting client."""
        worker, client, queue, runs = await self.start_worker()
        self.assertEqual(await self.wait(client.submit("add", (2, 3), wait=True)), 5)

    @contract
    async def test_worker_retry_then_dead_letter(self) -> None:
        """
        A failing task runs again after the backoff step (waiting in the
        broker's delay levels), then goes to C{<q>.dead} with the reason,
        error and attempt count in headers, and the caller gets the error.
        """
        worker, client, queue, runs = await self.start_worker()
        start = self.clock.seconds()
        err = await self.failure_of(client.submit("boom", wait=True), timeout=10)
        self.assertIsInstance(err, TaskFailed)
        self.assertEqual(err.error_type, "ValueError")
        self.assertEqual(runs, [(1, None), (2, 1)])
        self.assertGreaterEqual(self.clock.seconds() - start, 0.2)
        [dead] = await self.dead_letters(queue, 1)
        h = dead.headers
        self.assertEqual(
            (
                h["x-txmsg-reason"],
                h["x-txmsg-error-type"],
                h["x-txmsg-error-message"],
                h["x-txmsg-attempts"],
                h["x-txmsg-queue"],
            ),
            ("failed", "ValueError", "always fails", 2, queue),
        )
        self.flush_errors(ValueError)

    @contract
    async def test_worker_unknown_task(self) -> None:
        """An unknown task is dead-lettered at once with reason C{unknown-task}."""
        worker, client, queue, runs = await self.start_worker()
        err = await self.failure_of(client.submit("nope", wait=True))
        self.assertIsInstance(err, TaskFailed)
        self.assertEqual(err.error_type, "UnknownTask")
        [dead] = await self.dead_letters(queue, 1)
        self.assertEqual(dead.headers["x-txmsg-reason"], "unknown-task")

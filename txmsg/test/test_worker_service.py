# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.service.WorkerService}, on the in-memory broker
(L{txmsg.testing.MemoryBroker}) and a Clock.
"""

from __future__ import annotations

import json
from typing import Any

from pika.spec import BasicProperties
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp.delay_levels import decode
from txmsg.events import EventRegistry
from txmsg.redis.control import ControlCommand
from txmsg.test._events_fakes import FakeThreadPool, ThreadingClock
from txmsg.test._logs import captured_global_logs
from txmsg.testing import BrokerMessage, MemoryBroker
from txmsg.worker.brokers.amqp import AMQPWorkerBroker
from txmsg.worker.envelope import Task, encode_task
from txmsg.worker.headers import ONCE_HEADER
from txmsg.worker.retry import ATTEMPT_HEADER, RetryPolicy
from txmsg.worker.service import (
    ERROR_TYPE_HEADER,
    REASON_HEADER,
    TRACEBACK_HEADER,
    WorkerService,
)
from txmsg.worker.tasks import TaskCatalog


def task_properties(**kw: Any) -> BasicProperties:
    """Properties of a v1 task message (persistent JSON), plus C{kw}."""
    return BasicProperties(content_type="application/json", delivery_mode=2, **kw)


class WorkerServiceTests(SynchronousTestCase):
    """
    The worker's handling of deliveries.
    """

    def setUp(self) -> None:
        self.pool = FakeThreadPool()
        self.clock = ThreadingClock(self.pool)
        self.events = EventRegistry(reactor=self.clock)
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("replies")
        self.amqp = self.broker.connection(events=self.events)
        self.tasks = TaskCatalog()
        self.pending: list[Deferred[Any]] = []
        self.mine: set[int] = set()
        self.seen = 0
        self.tasks.add(lambda x, y: x + y, name="add")
        self.tasks.add(self.slow, name="slow")
        self.tasks.add(self.boom, name="boom", retry_for=(Exception,))
        self.tasks.add(lambda: "from a thread", name="threaded", blocking=True)
        self.tasks.add(lambda: Deferred(), name="hangs", timeout=5)

    def slow(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d

    def boom(self) -> None:
        raise ZeroDivisionError("division by zero")

    def start(self, queues: tuple[str, ...] = ("work",), **kw: Any) -> None:
        kw.setdefault("retry", RetryPolicy(max_retries=2, initial_delay=1, jitter=0))
        self.worker = WorkerService(
            self.tasks,
            queues=queues,
            name="w1",
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
            **kw,
        )
        self.worker.startService()
        self.clock.advance(0)

    def deliver(self, body: bytes, queue: str = "work", **properties: Any) -> None:
        """Publish C{body} to C{queue} as another client would, and let it flow."""
        properties.setdefault("content_type", "application/json")
        self.broker.publish("", queue, body, **properties)
        self.mine.add(id(self.broker.published[-1]))
        self.clock.advance(0)

    def publishes(self) -> list[BrokerMessage]:
        """
        What the worker published (and the broker accepted) since the last
        call, once everything due ran.
        """
        self.clock.advance(0)
        found = [m for m in self.broker.published[self.seen :] if id(m) not in self.mine]
        self.seen = len(self.broker.published)
        return found

    def settled(self) -> bool:
        """Whether no delivery of C{work} waits for an ack."""
        return self.broker.unacked_count("work") == 0

    def test_topology(self) -> None:
        """
        The work queue and its dead-letter queue are declared durable; the
        shared delay levels are declared (no per-step delay queue), and the
        work queue is bound to their deliver exchange.
        """
        self.start()
        names = self.broker.queue_names("work*")
        self.assertEqual(set(names), {"work", "work.dead"})
        self.assertTrue(all(self.broker.queue(n).durable for n in names))
        levels = self.broker.queue_names("txmsg.delay.[0-9]*")
        self.assertEqual(len(levels), 25)
        self.assertEqual(
            self.broker.queue("txmsg.delay.01").arguments,
            {
                "x-queue-mode": "lazy",
                "x-message-ttl": 200,
                "x-dead-letter-exchange": "txmsg.delay.00",
            },
        )
        self.broker.publish("txmsg.delay.deliver", "0." * 25 + "work", b"due")
        self.assertEqual([m.body for m in self.broker.messages("work")], [b"due"])
        self.assertEqual(self.broker.queue("work").arguments, {})

    def test_quorum_queues(self) -> None:
        """
        With C{queue_type="quorum"} the work and dead-letter queues are
        declared as quorum queues (the work queue dead-letters at-least-once
        and caps deliveries), and so are the delay levels (their own set,
        dead-lettering at-least-once).
        """
        self.start(queue_type="quorum")
        work = self.broker.queue("work").arguments
        self.assertEqual(work["x-queue-type"], "quorum")
        self.assertEqual(work["x-dead-letter-routing-key"], "work.dead")
        self.assertEqual(work["x-dead-letter-strategy"], "at-least-once")
        self.assertIn("x-delivery-limit", work)
        self.assertEqual(self.broker.queue("work.dead").arguments, {"x-queue-type": "quorum"})
        self.assertEqual(
            self.broker.queue("txmsg.delay.quorum.00").arguments,
            {
                "x-queue-type": "quorum",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-message-ttl": 100,
                "x-dead-letter-exchange": "txmsg.delay.quorum.deliver",
            },
        )

    def test_transactions_reply_with_the_ack(self) -> None:
        """
        With C{transactions=True} a task's result goes to C{reply_to} with
        the same correlation id, in one transaction with the ack of its
        delivery, on the consumer's channel: the reply is published, and the
        delivery acked, when that commit is (no confirm to wait for first).
        """
        self.start(transactions=True)
        self.broker.hold_confirms()
        self.deliver(
            encode_task(Task("add", (2, 3), {}, "t1")), reply_to="replies", correlation_id="c1"
        )
        [reply] = self.publishes()
        self.assertEqual(reply.routing_key, "replies")
        self.assertEqual(json.loads(reply.body), {"id": "t1", "status": "ok", "result": 5})
        self.assertEqual(reply.properties.correlation_id, "c1")
        self.assertEqual(reply.properties.content_type, "application/json")
        self.assertTrue(self.settled())
        self.assertEqual(self.broker.unconfirmed(), [])
        [channel] = [
            ch for conn in self.broker.connections for ch in conn.channels if ch.consumer_tags
        ]
        self.assertEqual(
            [name for name, _ in channel.calls][-3:], ["basic_publish", "basic_ack", "tx_commit"]
        )
        self.assertEqual(self.broker.acked, 1)
        self.assertEqual(self.worker.stats.succeeded, 1)

    def consumer_channels(self) -> list[Any]:
        """The open channels that have a consumer on them."""
        return [
            ch
            for conn in self.broker.connections
            for ch in conn.channels
            if ch.consumer_tags and ch.is_open
        ]

    def deliver_replying(self, n: int, reply_to: str) -> None:
        """Deliver C{n} C{add} tasks replying to C{reply_to}, confirms released."""
        for i in range(n):
            self.deliver(
                encode_task(Task("add", (i, 1), {}, "r%d" % i)),
                reply_to=reply_to,
                correlation_id="c%d" % i,
            )
            self.broker.release_confirms()

    def test_moves_to_transactions_and_back(self) -> None:
        """
        By default the consumer starts plain; once 100 tasks in a row reply
        to an ordinary queue it moves to a transactional channel (replies
        then committed with their acks), and once 100 have no reply it moves
        back.  Each move is logged; every task runs once and is settled, and
        none comes back redelivered.
        """
        logged = captured_global_logs(self)
        self.start()
        [plain] = self.consumer_channels()
        self.assertNotIn("tx_select", [name for name, _ in plain.calls])
        self.deliver_replying(100, "replies")
        [tx] = self.consumer_channels()
        self.assertIsNot(tx, plain)
        self.assertFalse(plain.is_open)
        self.assertEqual(self.worker.status()["transactional"], ["work"])
        self.deliver(
            encode_task(Task("add", (2, 3), {}, "t1")), reply_to="replies", correlation_id="c1"
        )
        self.assertEqual(
            [name for name, _ in tx.calls][-3:], ["basic_publish", "basic_ack", "tx_commit"]
        )
        for n in range(100):
            self.deliver(encode_task(Task("add", (n, 1), {}, "n%d" % n)))
        [back] = self.consumer_channels()
        self.assertNotIn(back, (plain, tx))
        self.assertNotIn("tx_select", [name for name, _ in back.calls])
        self.assertEqual(self.worker.status()["transactional"], [])
        self.assertTrue(self.settled())
        self.assertEqual(self.worker.stats.succeeded, 201)
        self.assertEqual(len(self.broker.messages("replies")), 101)
        moves = [e["how"] for e in logged if "reply to a queue" in e.get("log_format", "")]
        self.assertEqual(len(moves), 2)
        self.assertIn("transactional", moves[0])
        self.assertIn("plain", moves[1])

    def test_quorum_queue_stays_plain(self) -> None:
        """
        The consumer of a quorum queue does not move (a cancelled quorum
        consumer's deliveries in flight can come back counted), however
        many tasks reply to a queue.
        """
        self.start(queue_type="quorum")
        [plain] = self.consumer_channels()
        self.deliver_replying(150, "replies")
        self.assertEqual(self.consumer_channels(), [plain])
        self.assertEqual(len(self.broker.messages("replies")), 150)

    def test_direct_reply_to_stays_plain(self) -> None:
        """
        Replies to direct reply-to do not count towards a move (the
        transaction cannot carry them): the consumer stays plain.
        """
        self.start()
        [plain] = self.consumer_channels()
        self.deliver_replying(150, "amq.rabbitmq.reply-to.g1h2AA==.abc")
        self.assertEqual(self.consumer_channels(), [plain])
        broker = self.worker.broker
        assert isinstance(broker, AMQPWorkerBroker)
        self.assertEqual(broker.choices["work"].share, 0.0)

    def test_success_replies_then_acks(self) -> None:
        """
        A task's result goes to C{reply_to} with the same correlation id,
        published with a confirm; the delivery is acked only once that
        confirm arrived (the consumer's channel is plain by default).
        """
        self.start()
        self.broker.hold_confirms()
        self.deliver(
            encode_task(Task("add", (2, 3), {}, "t1")), reply_to="replies", correlation_id="c1"
        )
        [reply] = self.publishes()
        self.assertEqual(json.loads(reply.body)["result"], 5)
        self.assertFalse(self.settled())
        self.broker.release_confirms()
        self.clock.advance(0)
        self.assertTrue(self.settled())
        self.assertEqual(self.worker.stats.succeeded, 1)
        [channel] = [
            ch for conn in self.broker.connections for ch in conn.channels if ch.consumer_tags
        ]
        self.assertNotIn("tx_select", [name for name, _ in channel.calls])

    def test_direct_reply_to_confirmed_then_acked(self) -> None:
        """
        A reply to RabbitMQ's direct reply-to takes the confirmed path even
        with transactions: the delivery is acked only once the reply is
        confirmed.
        """
        self.start(transactions=True)
        self.broker.hold_confirms()
        self.deliver(
            encode_task(Task("add", (2, 3), {}, "t1")),
            reply_to="amq.rabbitmq.reply-to.g1h2AA==.abc",
            correlation_id="c1",
        )
        self.clock.advance(0)
        self.assertFalse(self.settled())
        self.broker.release_confirms()
        self.clock.advance(0)
        self.assertTrue(self.settled())
        [channel] = [
            ch for conn in self.broker.connections for ch in conn.channels if ch.consumer_tags
        ]
        self.assertNotIn("basic_publish", [name for name, _ in channel.calls])

    def test_lost_reply_logged(self) -> None:
        """
        With transactions, a reply to a queue that does not exist comes back
        from the broker: one warning names it; the delivery is acked all the
        same.
        """
        logged = captured_global_logs(self)
        self.start(transactions=True)
        self.deliver(
            encode_task(Task("add", (2, 3), {}, "t1")), reply_to="gone", correlation_id="c"
        )
        self.clock.advance(0)
        self.assertTrue(self.settled())
        lost = [e for e in logged if "was lost" in e.get("log_format", "")]
        self.assertEqual([e["reply_to"] for e in lost], ["gone"])

    def test_failure_goes_to_retry_queue(self) -> None:
        """
        A failing task is republished to the delay queue of its first backoff
        step with its attempt count, then acked; nothing waits in memory, and
        no error is logged for a failure that will be retried.
        """
        self.start()
        body = encode_task(Task("boom", (), {}, "t2"))
        self.deliver(body)
        [retried] = self.publishes()
        self.assertEqual(
            (retried.exchange, decode(retried.routing_key)), ("txmsg.delay.03", (10, "work"))
        )
        self.assertEqual(retried.body, body)
        self.assertEqual(retried.headers[ATTEMPT_HEADER], 1)
        self.assertIsNone(retried.properties.expiration)
        self.assertEqual(retried.properties.delivery_mode, 2)
        self.assertTrue(self.settled())
        self.assertEqual(self.worker.stats.retried, 1)
        self.assertEqual(self.flushLoggedErrors(ZeroDivisionError), [])

    def test_second_retry_waits_longer(self) -> None:
        """
        The second retry uses the next, longer step.
        """
        self.start()
        self.deliver(encode_task(Task("boom", (), {}, "t2")), headers={ATTEMPT_HEADER: 1})
        [retried] = self.publishes()
        self.assertEqual(
            (decode(retried.routing_key), retried.headers[ATTEMPT_HEADER]), ((20, "work"), 2)
        )
        self.flushLoggedErrors(ZeroDivisionError)

    def test_dead_letter_after_last_retry(self) -> None:
        """
        After C{max_retries} retries the task goes to the dead-letter queue
        with the error in its headers, and the caller gets an error reply.
        """
        self.start()
        body = encode_task(Task("boom", (), {}, "t3"))
        self.deliver(body, headers={ATTEMPT_HEADER: 2}, reply_to="replies", correlation_id="c3")
        dead, reply = self.publishes()
        self.assertEqual([dead.routing_key, reply.routing_key], ["work.dead", "replies"])
        self.assertEqual(dead.body, body)
        self.assertEqual(dead.headers[REASON_HEADER], "failed")
        self.assertEqual(dead.headers[ERROR_TYPE_HEADER], "ZeroDivisionError")
        self.assertEqual(dead.headers[ATTEMPT_HEADER], 3)
        self.assertIn("division by zero", dead.headers[TRACEBACK_HEADER])
        self.assertIsNone(dead.properties.expiration)
        self.assertEqual(
            json.loads(reply.body)["error"],
            {"type": "ZeroDivisionError", "message": "division by zero"},
        )
        self.assertTrue(self.settled())
        self.flushLoggedErrors(ZeroDivisionError)

    def test_per_task_max_retries(self) -> None:
        """
        A task's own C{max_retries} overrides the worker's.
        """
        self.tasks.add(self.boom, name="fragile", max_retries=0)
        self.start()
        self.deliver(encode_task(Task("fragile", (), {}, "t")))
        [dead] = self.publishes()
        self.assertEqual(dead.routing_key, "work.dead")
        self.flushLoggedErrors(ZeroDivisionError)

    def test_malformed_and_unknown(self) -> None:
        """
        Invalid JSON and unknown task names are dead-lettered at once with
        the reason; the worker goes on.
        """
        self.start()
        self.deliver(b"{not json")
        self.deliver(encode_task(Task("nope", (), {}, "t4")))
        published = self.publishes()
        self.assertEqual([m.routing_key for m in published], ["work.dead", "work.dead"])
        reasons = [m.headers[REASON_HEADER] for m in published]
        self.assertEqual(reasons, ["malformed", "unknown-task"])
        self.assertEqual(self.broker.acked, 2)
        self.assertEqual((self.worker.stats.malformed, self.worker.stats.unknown), (1, 1))

    def test_bad_arguments_dead_lettered_at_once(self) -> None:
        """
        Arguments that do not fit the task's signature are dead-lettered at
        once (a retry could never succeed), without running the task.
        """
        self.start()
        self.deliver(encode_task(Task("add", (1,), {}, "t")))
        [dead] = self.publishes()
        self.assertEqual(
            (dead.routing_key, dead.headers[REASON_HEADER]), ("work.dead", "bad-arguments")
        )
        self.assertIn("missing a required argument", dead.headers["x-txmsg-error-message"])

    def test_not_acked_when_handoff_fails(self) -> None:
        """
        When the retry cannot be published (the broker nacks it), the
        delivery is not acked until its fallback, a retry through the delay
        queue, is confirmed; it is never nacked back to the head of the queue.
        """
        self.start()
        self.broker.nack_next(1, routing_key="*.work")
        self.deliver(encode_task(Task("boom", (), {}, "t5")))
        [retried] = self.publishes()
        self.assertEqual(
            (decode(retried.routing_key), retried.headers[ATTEMPT_HEADER]), ((10, "work"), 1)
        )
        self.assertTrue(self.settled())
        self.assertEqual(self.broker.message_count("work"), 0)
        self.flushLoggedErrors()

    def test_blocking_task_runs_in_pool(self) -> None:
        """
        A blocking task runs in the worker's thread pool.
        """
        self.start()
        self.deliver(
            encode_task(Task("threaded", (), {}, "t6")), reply_to="replies", correlation_id="c"
        )
        self.assertEqual(len(self.pool.work), 1)
        self.assertEqual(self.publishes(), [])
        self.pool.run_all()
        self.clock.advance(0)
        [reply] = self.publishes()
        self.assertEqual(json.loads(reply.body)["result"], "from a thread")

    def test_timeout_is_a_failure(self) -> None:
        """
        A task that runs over its time limit is cancelled and retried.
        """
        self.start()
        self.deliver(encode_task(Task("hangs", (), {}, "t7")))
        self.clock.advance(5)
        [retried] = self.publishes()
        self.assertEqual(decode(retried.routing_key), (10, "work"))
        self.assertEqual(self.worker.stats.timed_out, 1)
        self.flushLoggedErrors()

    def test_stop_job(self) -> None:
        """
        C{stop-job} cancels one running task: it is dead-lettered as
        cancelled, not retried.
        """
        self.start()
        self.deliver(encode_task(Task("slow", (), {}, "job-1")))
        self.assertEqual([r["id"] for r in self.worker.status()["running"]], ["job-1"])
        reply = self.worker.control.stop_job(ControlCommand("stop-job", {"job_id": "job-1"}))
        self.assertEqual(reply, {"job_id": "job-1", "cancelled": True})
        [dead] = self.publishes()
        self.assertEqual(
            (dead.routing_key, dead.headers[REASON_HEADER]), ("work.dead", "cancelled")
        )
        self.assertEqual(self.worker.stats.cancelled, 1)
        self.flushLoggedErrors()

    def test_graceful_stop_finishes_running_task(self) -> None:
        """
        Stopping waits for a running task that finishes within the grace
        period, acks it, then closes the connection.
        """
        self.start(grace=10)
        self.deliver(encode_task(Task("slow", (), {}, "t8")))
        d = self.worker.stopService()
        self.assertNoResult(d)
        self.clock.advance(3)
        self.pending[0].callback("done")
        self.clock.advance(0)
        self.assertEqual(self.broker.acked, 1)
        self.successResultOf(d)
        self.assertEqual(self.worker.state, "stopped")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_grace_expiry_requeues(self) -> None:
        """
        A task still running when the grace period ends is cancelled and
        requeued (nacked with requeue), not acked and not dead-lettered.
        """
        self.start(grace=10)
        self.deliver(encode_task(Task("slow", (), {}, "t9")))
        d = self.worker.stopService()
        self.clock.advance(10)
        self.successResultOf(d)
        self.assertEqual(self.broker.acked, 0)
        [back] = self.broker.messages("work")
        self.assertTrue(back.redelivered)
        self.assertEqual(self.broker.message_count("work.dead"), 0)
        self.assertEqual(self.worker.stats.requeued, 1)
        self.flushLoggedErrors()

    def test_cancelled_tasks_log_no_error(self) -> None:
        """
        A task cancelled on purpose (C{stop-job}, C{kill-horse}, end of the
        grace period) is not logged as a failed event handler: a clean
        shutdown logs no traceback.  The dead letter of a stopped job still
        names C{CancelledError}.
        """
        self.start(grace=10)
        self.deliver(encode_task(Task("slow", (), {}, "job-1")))
        self.worker.control.stop_job(ControlCommand("stop-job", {"job_id": "job-1"}))
        [dead] = self.publishes()
        self.assertEqual(dead.routing_key, "work.dead")
        self.assertEqual(dead.headers[ERROR_TYPE_HEADER], "CancelledError")
        self.assertIn("stop-job", dead.headers["x-txmsg-error-message"])
        self.deliver(encode_task(Task("slow", (), {}, "job-2")))
        self.worker.control.kill_horse(ControlCommand("kill-horse", {}))
        self.assertEqual([m.routing_key for m in self.publishes()], ["work.dead"])
        self.deliver(encode_task(Task("slow", (), {}, "job-3")))
        d = self.worker.stopService()
        self.clock.advance(10)
        self.successResultOf(d)
        self.assertEqual(self.worker.stats.cancelled, 2)
        self.assertEqual(self.worker.stats.requeued, 1)
        self.assertEqual(self.flushLoggedErrors(CancelledError), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_raw_handler(self) -> None:
        """
        A raw queue hands the body bytes to its function (in the pool) and
        acks after it returned.
        """
        seen: list[bytes] = []
        self.worker = WorkerService(
            TaskCatalog(),
            queues=[],
            raw_handlers={"plain": seen.append},
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
        )
        self.worker.startService()
        self.clock.advance(0)
        self.deliver(b"hello...", queue="plain")
        self.assertEqual(self.broker.acked, 0)
        self.pool.run_all()
        self.clock.advance(0)
        self.assertEqual(seen, [b"hello..."])
        self.assertEqual(self.broker.acked, 1)

    def test_raw_handler_reply(self) -> None:
        """
        A raw handler's return value is the reply to a plain RPC request
        (the seeds' C{rpc_client.py}); a raw handler failure dead-letters.
        """

        async def fib(body: bytes) -> int:
            n = int(body)
            if n < 0:
                raise ValueError("negative")
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a

        self.worker = WorkerService(
            TaskCatalog(),
            queues=[],
            raw_handlers={"rpc_queue": fib},
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
        )
        self.worker.startService()
        self.clock.advance(0)
        self.deliver(b"10", queue="rpc_queue", reply_to="replies", correlation_id="x")
        [reply] = self.publishes()
        self.assertEqual(
            (reply.routing_key, reply.body, reply.properties.correlation_id),
            ("replies", b"55", "x"),
        )
        self.deliver(b"-1", queue="rpc_queue")
        [dead] = self.publishes()
        self.assertEqual(
            (dead.routing_key, dead.headers[REASON_HEADER]), ("rpc_queue.dead", "failed")
        )
        self.flushLoggedErrors(ValueError)

    def test_idempotent_task_runs_once_per_id(self) -> None:
        """
        An idempotent task delivered twice with the same id runs once; after
        a failure its id is released so that the retry can run.
        """

        class FakeRedis:
            parent = "someone"

            def __init__(self) -> None:
                self.keys: dict[str, str] = {}
                self.handler = self

            def control_listener(self, *a: Any, **kw: Any) -> None:
                pass

            def set(
                self, key: str, value: str, expire: int = 0, only_if_not_exists: bool = False
            ) -> Any:
                if only_if_not_exists and key in self.keys:
                    return succeed(None)
                self.keys[key] = value
                return succeed("OK")

            def sadd(self, key: str, member: str) -> Any:
                return succeed(1)

            def delete(self, key: str) -> Any:
                return succeed(int(self.keys.pop(key, None) is not None))

        runs: list[int] = []
        self.tasks.add(lambda n: runs.append(n), name="once", idempotent=True)
        self.tasks.add(self.boom, name="once_fails", idempotent=True, retry_for=(Exception,))
        redis = FakeRedis()
        self.start(redis=redis)
        body = encode_task(Task("once", (1,), {}, "same-id"))
        self.deliver(body)
        self.deliver(body)
        self.assertEqual(runs, [1])
        self.assertEqual(self.worker.stats.duplicates, 1)
        self.assertEqual(self.broker.acked, 2)
        self.assertIn("txmsg:task-ran:same-id", redis.keys)
        self.assertIn("txmsg:worker:w1", redis.keys)  # the first heartbeat
        self.publishes()
        self.deliver(encode_task(Task("once_fails", (), {}, "f-id")))
        [retried] = self.publishes()
        self.assertEqual(decode(retried.routing_key), (10, "work"))
        self.assertNotIn("txmsg:task-ran:f-id", redis.keys)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_once_header_runs_an_id_once(self) -> None:
        """
        A task sent with C{x-txmsg-once} (as the scheduler sends each tick)
        runs once per id even when the task is not declared idempotent.
        """
        claimed: dict[str, str] = {}

        class ClaimingRedis:
            parent = "someone"
            handler = property(lambda self: self)

            def control_listener(self, *a: Any, **kw: Any) -> None:
                pass

            def set(
                self, key: str, value: str, expire: int = 0, only_if_not_exists: bool = False
            ) -> Any:
                if only_if_not_exists and key in claimed:
                    return succeed(None)
                claimed[key] = value
                return succeed("OK")

            def sadd(self, key: str, member: str) -> Any:
                return succeed(1)

            def delete(self, key: str) -> Any:
                return succeed(int(claimed.pop(key, None) is not None))

        runs: list[int] = []
        self.tasks.add(lambda n: runs.append(n), name="tick")
        self.start(redis=ClaimingRedis())
        body = encode_task(Task("tick", (1,), {}, "every:2026-01-01T00:00:00Z"))
        self.deliver(body, headers={ONCE_HEADER: 1})
        self.deliver(body, headers={ONCE_HEADER: 1})
        self.deliver(encode_task(Task("tick", (2,), {}, "plain")))
        self.deliver(encode_task(Task("tick", (2,), {}, "plain")))
        self.assertEqual(runs, [1, 2, 2])
        self.assertEqual(self.worker.stats.duplicates, 1)
        self.assertIn("txmsg:task-ran:every:2026-01-01T00:00:00Z", claimed)

    def test_status(self) -> None:
        """
        C{status()} names the worker, its queues, tasks and counters.
        """
        self.start()
        status = self.worker.status()
        self.assertEqual(status["name"], "w1")
        self.assertEqual(status["queues"], ["work"])
        self.assertIn("add", status["tasks"])
        self.assertEqual(status["state"], "running")
        self.assertEqual(status["counts"]["succeeded"], 0)
        json.dumps(status)

    def test_init_has_no_side_effects(self) -> None:
        """
        Making a worker declares nothing and registers nothing: that
        happens when it starts.
        """
        self.worker = WorkerService(
            self.tasks, queues=["work"], amqp=self.amqp, events=self.events, reactor=self.clock
        )
        self.assertEqual(self.amqp.topology.declarations, ())
        self.assertEqual(self.worker.running_tasks, {})
        self.worker.startService()
        # work, work.dead, its binding to the delay levels and their 104
        # declarations (25 exchanges, queues, bindings and exchange bindings,
        # the deliver and unroutable exchanges, the unroutable queue and its
        # binding)
        self.assertEqual(len(self.amqp.topology.declarations), 107)
        self.successResultOf(self.worker.stopService())

    def test_invalid_settings(self) -> None:
        """
        Nonsense settings are refused.
        """
        bad: list[dict[str, Any]] = [
            {"prefetch": 0},
            {"concurrency": 0},
            {"grace": -1},
            {"queues": []},
        ]
        for kw in bad:
            self.assertRaises(
                ValueError, WorkerService, self.tasks, amqp=self.amqp, reactor=self.clock, **kw
            )

# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.service.WorkerService}, on the AMQP fakes and a Clock.
"""

from __future__ import annotations

import json
from typing import Any

from pika.spec import BasicProperties
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from txmsg.amqp._fakes import FakeConnection, fake_service
from txmsg.events import EventRegistry
from txmsg.test._events_fakes import FakeThreadPool, ThreadingClock
from txmsg.worker.envelope import Task, encode_task
from txmsg.worker.retry import ATTEMPT_HEADER, RetryPolicy
from txmsg.worker.service import (
    ERROR_TYPE_HEADER,
    REASON_HEADER,
    TRACEBACK_HEADER,
    WorkerService,
)
from txmsg.worker.tasks import TaskRegistry


def task_properties(**kw: Any) -> BasicProperties:
    return BasicProperties(content_type="application/json", delivery_mode=2, **kw)


class WorkerServiceTests(SynchronousTestCase):
    """
    The worker's handling of deliveries.
    """

    def setUp(self) -> None:
        self.pool = FakeThreadPool()
        self.clock = ThreadingClock(self.pool)
        self.events = EventRegistry(reactor=self.clock)
        self.amqp = fake_service(self.clock, events=self.events)
        self.amqp.setServiceParent(MultiService())  # never started: driven by the fakes
        self.tasks = TaskRegistry()
        self.pending: list[Deferred[Any]] = []
        self.tasks.add(lambda x, y: x + y, name="add")
        self.tasks.add(self.slow, name="slow")
        self.tasks.add(self.boom, name="boom")
        self.tasks.add(lambda: "from a thread", name="threaded", blocking=True)
        self.tasks.add(lambda: Deferred(), name="hangs", timeout=5)

    def slow(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d

    def boom(self) -> None:
        raise ZeroDivisionError("division by zero")

    def start(self, **kw: Any) -> None:
        kw.setdefault("retry", RetryPolicy(max_retries=2, initial_delay=1, jitter=0))
        self.worker = WorkerService(
            self.tasks,
            queues=["work"],
            name="w1",
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
            **kw,
        )
        self.worker.startService()
        self.conn = FakeConnection(self.amqp).open()
        [self.consumer_channel] = [c for c in self.conn.channels if c.consumers]

    def deliver(self, body: bytes, **kw: Any) -> int:
        props = kw.pop("properties", None) or task_properties()
        tag = self.consumer_channel.deliver(body, props, routing_key="work", **kw)
        self.clock.advance(0)
        return tag

    def publishes(self) -> list[tuple[str, bytes, Any]]:
        """
        Confirm every publish, again and again while confirming leads to more,
        and return what was published since the last call: (routing key,
        body, properties).
        """
        while True:
            waiting = [c for c in self.conn.channels if c.unconfirmed()]
            if not waiting:
                break
            for channel in waiting:
                while channel.unconfirmed():
                    channel.ack()
            self.clock.advance(0)
        found = []
        seen = getattr(self, "_seen", {})
        for channel in self.conn.channels:
            start = seen.get(id(channel), 0)
            for _exchange, key, body, props, _ in channel.published[start:]:
                found.append((key, body, props))
            seen[id(channel)] = len(channel.published)
        self._seen = seen
        return found

    def test_topology(self) -> None:
        """
        The work queue, its dead-letter queue and one delay queue per backoff
        step are declared durable; a delay queue's messages expire back into
        the work queue.
        """
        self.start()
        declared = {
            kw["queue"]: kw
            for ch in self.conn.channels
            for name, kw in ch.calls
            if name == "queue_declare"
        }
        self.assertEqual(
            set(declared), {"work", "work.dead", "work.retry.1000ms", "work.retry.2000ms"}
        )
        self.assertTrue(all(kw["durable"] for kw in declared.values()))
        self.assertEqual(
            declared["work.retry.2000ms"]["arguments"],
            {
                "x-message-ttl": 2000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "work",
            },
        )
        self.assertIsNone(declared["work"]["arguments"])

    def test_quorum_queues(self) -> None:
        """
        With C{queue_type="quorum"} the work and dead-letter queues are
        declared as quorum queues; the delay queues stay classic.
        """
        self.start(queue_type="quorum")
        declared = {
            kw["queue"]: kw["arguments"] or {}
            for ch in self.conn.channels
            for name, kw in ch.calls
            if name == "queue_declare"
        }
        self.assertEqual(declared["work"], {"x-queue-type": "quorum"})
        self.assertEqual(declared["work.dead"], {"x-queue-type": "quorum"})
        self.assertNotIn("x-queue-type", declared["work.retry.1000ms"])

    def test_success_replies_then_acks(self) -> None:
        """
        A task's result goes to C{reply_to} with the same correlation id; the
        delivery is acked only once that reply is confirmed.
        """
        self.start()
        body = encode_task(Task("add", (2, 3), {}, "t1"))
        tag = self.deliver(
            body, properties=task_properties(reply_to="replies", correlation_id="c1")
        )
        self.assertEqual(self.consumer_channel.acks, [])
        [(key, reply, props)] = self.publishes()
        self.assertEqual(key, "replies")
        self.assertEqual(json.loads(reply), {"id": "t1", "status": "ok", "result": 5})
        self.assertEqual(props.correlation_id, "c1")
        self.assertEqual(self.consumer_channel.acks, [tag])
        self.assertEqual(self.worker.stats.succeeded, 1)

    def test_failure_goes_to_retry_queue(self) -> None:
        """
        A failing task is republished to the delay queue of its first backoff
        step with its attempt count, then acked; nothing waits in memory, and
        no error is logged for a failure that will be retried.
        """
        self.start()
        body = encode_task(Task("boom", (), {}, "t2"))
        tag = self.deliver(body)
        [(key, retried, props)] = self.publishes()
        self.assertEqual(key, "work.retry.1000ms")
        self.assertEqual(retried, body)
        self.assertEqual(props.headers[ATTEMPT_HEADER], 1)
        self.assertEqual(props.expiration, "1000")
        self.assertEqual(props.delivery_mode, 2)
        self.assertEqual(self.consumer_channel.acks, [tag])
        self.assertEqual(self.worker.stats.retried, 1)
        # A failure that will be retried is a warning, not a logged error.
        self.assertEqual(self.flushLoggedErrors(ZeroDivisionError), [])

    def test_second_retry_waits_longer(self) -> None:
        """
        The second retry uses the next, longer step.
        """
        self.start()
        body = encode_task(Task("boom", (), {}, "t2"))
        self.deliver(body, properties=task_properties(headers={ATTEMPT_HEADER: 1}))
        [(key, _, props)] = self.publishes()
        self.assertEqual((key, props.headers[ATTEMPT_HEADER]), ("work.retry.2000ms", 2))
        self.flushLoggedErrors(ZeroDivisionError)

    def test_dead_letter_after_last_retry(self) -> None:
        """
        After C{max_retries} retries the task goes to the dead-letter queue
        with the error in its headers, and the caller gets an error reply.
        """
        self.start()
        body = encode_task(Task("boom", (), {}, "t3"))
        tag = self.deliver(
            body,
            properties=task_properties(
                headers={ATTEMPT_HEADER: 2}, reply_to="replies", correlation_id="c3"
            ),
        )
        published = self.publishes()
        self.assertEqual([key for key, _, _ in published], ["work.dead", "replies"])
        _, dead, props = published[0]
        self.assertEqual(dead, body)
        self.assertEqual(props.headers[REASON_HEADER], "failed")
        self.assertEqual(props.headers[ERROR_TYPE_HEADER], "ZeroDivisionError")
        self.assertEqual(props.headers[ATTEMPT_HEADER], 3)
        self.assertIn("division by zero", props.headers[TRACEBACK_HEADER])
        self.assertIsNone(props.expiration)
        self.assertEqual(
            json.loads(published[1][1])["error"],
            {"type": "ZeroDivisionError", "message": "division by zero"},
        )
        self.assertEqual(self.consumer_channel.acks, [tag])
        self.flushLoggedErrors(ZeroDivisionError)

    def test_per_task_max_retries(self) -> None:
        """
        A task's own C{max_retries} overrides the worker's.
        """
        self.tasks.add(self.boom, name="fragile", max_retries=0)
        self.start()
        self.deliver(encode_task(Task("fragile", (), {}, "t")))
        [(key, _, _)] = self.publishes()
        self.assertEqual(key, "work.dead")
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
        self.assertEqual([key for key, _, _ in published], ["work.dead", "work.dead"])
        reasons = [props.headers[REASON_HEADER] for _, _, props in published]
        self.assertEqual(reasons, ["malformed", "unknown-task"])
        self.assertEqual(len(self.consumer_channel.acks), 2)
        self.assertEqual((self.worker.stats.malformed, self.worker.stats.unknown), (1, 1))

    def test_bad_arguments_dead_lettered_at_once(self) -> None:
        """
        Arguments that do not fit the task's signature are dead-lettered at
        once (a retry could never succeed), without running the task.
        """
        self.start()
        self.deliver(encode_task(Task("add", (1,), {}, "t")))
        [(key, _, props)] = self.publishes()
        self.assertEqual((key, props.headers[REASON_HEADER]), ("work.dead", "bad-arguments"))
        self.assertIn("missing a required argument", props.headers["x-txmsg-error-message"])

    def test_not_acked_when_handoff_fails(self) -> None:
        """
        When the retry cannot be published (the broker nacks it), the
        delivery is not acked until its fallback, a retry through the delay
        queue, is confirmed; it is never nacked back to the head of the queue.
        """
        self.start()
        self.deliver(encode_task(Task("boom", (), {}, "t5")))
        [publisher] = [c for c in self.conn.channels if c.unconfirmed()]
        publisher.nack()
        self.clock.advance(0)
        self.assertEqual(self.consumer_channel.acks, [])
        [(key, _, props)] = self.publishes()[-1:]
        self.assertEqual((key, props.headers[ATTEMPT_HEADER]), ("work.retry.1000ms", 1))
        self.assertEqual(len(self.consumer_channel.acks), 1)
        self.assertEqual(self.consumer_channel.nacks, [])
        self.flushLoggedErrors()

    def test_blocking_task_runs_in_pool(self) -> None:
        """
        A blocking task runs in the worker's thread pool.
        """
        self.start()
        self.deliver(
            encode_task(Task("threaded", (), {}, "t6")),
            properties=task_properties(reply_to="r", correlation_id="c"),
        )
        self.assertEqual(len(self.pool.work), 1)
        self.assertEqual(self.publishes(), [])
        self.pool.run_all()
        self.clock.advance(0)
        [(_, reply, _)] = self.publishes()
        self.assertEqual(json.loads(reply)["result"], "from a thread")

    def test_timeout_is_a_failure(self) -> None:
        """
        A task that runs over its time limit is cancelled and retried.
        """
        self.start()
        self.deliver(encode_task(Task("hangs", (), {}, "t7")))
        self.clock.advance(5)
        [(key, _, _)] = self.publishes()
        self.assertEqual(key, "work.retry.1000ms")
        self.assertEqual(self.worker.stats.timed_out, 1)
        self.flushLoggedErrors()

    def test_stop_job(self) -> None:
        """
        C{stop-job} cancels one running task: it is dead-lettered as
        cancelled, not retried.
        """
        from txmsg.redis.control import ControlCommand

        self.start()
        self.deliver(encode_task(Task("slow", (), {}, "job-1")))
        self.assertEqual([r["id"] for r in self.worker.status()["running"]], ["job-1"])
        reply = self.worker.control.stop_job(ControlCommand("stop-job", {"job_id": "job-1"}))
        self.assertEqual(reply, {"job_id": "job-1", "cancelled": True})
        self.clock.advance(0)
        [(key, _, props)] = self.publishes()
        self.assertEqual((key, props.headers[REASON_HEADER]), ("work.dead", "cancelled"))
        self.assertEqual(self.worker.stats.cancelled, 1)
        self.flushLoggedErrors()

    def test_graceful_stop_finishes_running_task(self) -> None:
        """
        Stopping waits for a running task that finishes within the grace
        period, acks it, then closes the connection.
        """
        self.start(grace=10)
        tag = self.deliver(encode_task(Task("slow", (), {}, "t8")))
        d = self.worker.stopService()
        self.assertNoResult(d)
        self.clock.advance(3)
        self.pending[0].callback("done")
        self.clock.advance(0)
        self.assertEqual(self.consumer_channel.acks, [tag])
        self.successResultOf(d)
        self.assertEqual(self.worker.state, "stopped")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_grace_expiry_requeues(self) -> None:
        """
        A task still running when the grace period ends is cancelled and
        requeued (nacked with requeue), not acked and not dead-lettered.
        """
        self.start(grace=10)
        tag = self.deliver(encode_task(Task("slow", (), {}, "t9")))
        d = self.worker.stopService()
        self.clock.advance(10)
        self.assertEqual(self.consumer_channel.nacks, [(tag, True)])
        self.assertEqual(self.consumer_channel.acks, [])
        self.successResultOf(d)
        self.assertEqual(self.worker.stats.requeued, 1)
        self.flushLoggedErrors()

    def test_cancelled_tasks_log_no_error(self) -> None:
        """
        A task cancelled on purpose (C{stop-job}, C{kill-horse}, end of the
        grace period) is not logged as a failed event handler: a clean
        shutdown logs no traceback.  The dead letter of a stopped job still
        names C{CancelledError}.
        """
        from twisted.internet.defer import CancelledError

        from txmsg.redis.control import ControlCommand

        self.start(grace=10)
        self.deliver(encode_task(Task("slow", (), {}, "job-1")))
        self.worker.control.stop_job(ControlCommand("stop-job", {"job_id": "job-1"}))
        self.clock.advance(0)
        [(key, _, props)] = self.publishes()
        self.assertEqual(key, "work.dead")
        self.assertEqual(props.headers[ERROR_TYPE_HEADER], "CancelledError")
        self.assertIn("stop-job", props.headers["x-txmsg-error-message"])
        self.deliver(encode_task(Task("slow", (), {}, "job-2")))
        self.worker.control.kill_horse(ControlCommand("kill-horse", {}))
        self.clock.advance(0)
        self.assertEqual([k for k, _, _ in self.publishes()], ["work.dead"])
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
            TaskRegistry(),
            queues=[],
            raw_handlers={"plain": seen.append},
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
        )
        self.worker.startService()
        conn = FakeConnection(self.amqp).open()
        [channel] = [c for c in conn.channels if c.consumers]
        tag = channel.deliver(b"hello...", BasicProperties())
        self.clock.advance(0)
        self.pool.run_all()
        self.clock.advance(0)
        self.assertEqual(seen, [b"hello..."])
        self.assertEqual(channel.acks, [tag])

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
            TaskRegistry(),
            queues=[],
            raw_handlers={"rpc_queue": fib},
            amqp=self.amqp,
            events=self.events,
            reactor=self.clock,
            threadpool=self.pool,
        )
        self.worker.startService()
        self.conn = FakeConnection(self.amqp).open()
        [channel] = [c for c in self.conn.channels if c.consumers]
        channel.deliver(
            b"10", BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id="x")
        )
        self.clock.advance(0)
        [(key, body, props)] = self.publishes()
        self.assertEqual((key, body, props.correlation_id), ("amq.rabbitmq.reply-to", b"55", "x"))
        channel.deliver(b"-1", BasicProperties())
        self.clock.advance(0)
        [(key, _, props)] = self.publishes()
        self.assertEqual((key, props.headers[REASON_HEADER]), ("rpc_queue.dead", "failed"))
        self.flushLoggedErrors(ValueError)

    def test_idempotent_task_runs_once_per_id(self) -> None:
        """
        An idempotent task delivered twice with the same id runs once; after
        a failure its id is released so that the retry runs.
        """
        from twisted.internet.defer import succeed

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
        self.tasks.add(self.boom, name="once_fails", idempotent=True)
        redis = FakeRedis()
        self.start(redis=redis)
        body = encode_task(Task("once", (1,), {}, "same-id"))
        self.deliver(body)
        self.publishes()
        self.deliver(body, redelivered=True)
        self.publishes()
        self.assertEqual(runs, [1])
        self.assertEqual(self.worker.stats.duplicates, 1)
        self.assertEqual(len(self.consumer_channel.acks), 2)
        self.assertIn("txmsg:task-ran:same-id", redis.keys)
        self.assertIn("txmsg:worker:w1", redis.keys)  # the first heartbeat
        self.deliver(encode_task(Task("once_fails", (), {}, "f-id")))
        [(key, _, _)] = self.publishes()
        self.assertEqual(key, "work.retry.1000ms")
        self.assertNotIn("txmsg:task-ran:f-id", redis.keys)
        self.flushLoggedErrors(ZeroDivisionError)

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

    def test_invalid_settings(self) -> None:
        """
        Nonsense settings are refused.
        """
        for kw in [{"prefetch": 0}, {"concurrency": 0}, {"grace": -1}, {"queues": []}]:
            self.assertRaises(
                ValueError, WorkerService, self.tasks, amqp=self.amqp, reactor=self.clock, **kw
            )

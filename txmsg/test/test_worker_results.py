# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the result store (L{txmsg.worker.results}), the worker's
recorder (L{txmsg.worker.result_recorder}) and results in the worker
harness, on an in-memory Redis and a clock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg.tap.worker import Options, makeService
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis, WorkerHarness
from txmsg.worker.client import TaskClient
from txmsg.worker.decisions import (
    Ack,
    Cancelled,
    DeadLetter,
    DeliveryFacts,
    Duplicate,
    Failed,
    Rejected,
    Reply,
    Requeue,
    Retry,
    Succeeded,
)
from txmsg.worker.result_recorder import revoked_decision, status_for
from txmsg.worker.result_store import FINAL_STATUSES, IResultStore, ITaskState
from txmsg.worker.results import (
    REVOKE_CHANNEL,
    REVOKED_KEY,
    RedisResultStore,
    ResultTimeout,
    events_channel,
    result_key,
)
from txmsg.worker.service import WorkerService
from txmsg.worker.states import (
    DEAD_LETTERED,
    EXPIRED,
    FAILED,
    PENDING,
    RETRYING,
    REVOKED,
    STARTED,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    IllegalTransition,
    TaskState,
    check_transition,
)
from txmsg.worker.tasks import TaskCatalog


def needs_lua(test: SynchronousTestCase) -> None:
    """Skip C{test} when the in-memory Redis cannot run Lua (no lupa)."""
    reason = missing("lupa", extra="testing")
    if reason is not None:
        raise SkipTest(reason)


class StatusForTests(SynchronousTestCase):
    """L{status_for}: which status a settled delivery records."""

    def test_mapping(self) -> None:
        """Each outcome and decision gives the status the docs name."""
        dead = DeadLetter("failed", "E", "m")
        cases: list[tuple[Any, Any, str | None]] = [
            (Succeeded(1), Ack(), SUCCEEDED),
            (Succeeded(1), Reply(b"x"), SUCCEEDED),
            (Failed("E", "m"), Retry(1.0, 1), RETRYING),
            (Failed("E", "m"), dead, FAILED),
            (
                Rejected("malformed", "E", "m", "E"),
                DeadLetter("malformed", "E", "m"),
                DEAD_LETTERED,
            ),
            (Cancelled("stop-job"), DeadLetter("cancelled", "E", "m"), DEAD_LETTERED),
            (Cancelled("revoked"), DeadLetter("cancelled", "E", "m"), REVOKED),
            (DeadLetter("expired", "E", "m"), DeadLetter("expired", "E", "m"), EXPIRED),
            (Duplicate(), Ack(), None),
            (Cancelled("shutdown"), Requeue(), None),
        ]
        for outcome, decision, status in cases:
            self.assertEqual(status_for(outcome, decision), status, (outcome, decision))

    def test_revoked_decision(self) -> None:
        """A revoked delivery is dead-lettered as C{revoked}, with an error reply if asked."""
        quiet = revoked_decision(DeliveryFacts("q", task_id="t"))
        self.assertEqual((quiet.reason, quiet.reply), ("revoked", None))
        loud = revoked_decision(DeliveryFacts("q", task_id="t", has_reply_to=True))
        assert loud.reply is not None
        self.assertIn(b"TaskRevoked", loud.reply)


class StoreTests(SynchronousTestCase):
    """L{RedisResultStore} on L{MemoryRedis}."""

    def setUp(self) -> None:
        needs_lua(self)
        self.clock = Clock()
        self.clock.advance(1000)
        self.memory = MemoryRedis(self.clock)
        self.redis = self.memory.service()
        self.redis.startService()
        self.clock.advance(0)
        self.store = RedisResultStore(self.redis, ttl=60, clock=self.clock)

    def tearDown(self) -> None:
        self.redis.stopService()
        self.clock.advance(0)

    def settle(self, d: Deferred[Any]) -> Any:
        self.clock.advance(0)
        return self.successResultOf(d)

    def test_interface(self) -> None:
        """The store provides L{IResultStore}, its states L{ITaskState}."""
        self.assertTrue(verifyObject(IResultStore, self.store))
        state = TaskState("t", FAILED, error_type="E", error_message="m")
        self.assertTrue(verifyObject(ITaskState, state))
        self.assertEqual(state.error, {"type": "E", "message": "m"})
        self.assertIsNone(TaskState("t", SUCCEEDED).error)
        self.assertEqual(FINAL_STATUSES, TERMINAL)

    def test_keys(self) -> None:
        """Every key of a task carries its id as the hash tag."""
        self.assertEqual(result_key("abc"), "txmsg:{abc}:result")
        self.assertEqual(events_channel("abc"), "txmsg:{abc}:events")

    def test_record_and_read(self) -> None:
        """A recorded state reads back with its fields and a TTL."""
        self.assertEqual(self.settle(self.store.pending("t1", "add")), PENDING)
        self.assertEqual(self.settle(self.store.record("t1", STARTED, attempts=1)), STARTED)
        self.settle(self.store.record("t1", SUCCEEDED, result=[5], finished=1001.5))
        state = self.settle(self.store.status("t1"))
        self.assertEqual((state.status, state.task, state.result), (SUCCEEDED, "add", [5]))
        self.assertEqual((state.created, state.finished, state.attempts), (1000.0, 1001.5, 1))
        ttl = self.settle(self.redis.handler.execute_command("TTL", result_key("t1")))
        self.assertEqual(ttl, 60)
        self.assertIn((b"txmsg:{t1}:events", b"succeeded"), self.memory.published)

    def test_expires_after_ttl(self) -> None:
        """A state is gone once its TTL passed."""
        self.settle(self.store.pending("t1", "add"))
        self.clock.advance(61)
        self.assertIsNone(self.settle(self.store.status("t1")))

    def test_every_transition_in_redis(self) -> None:
        """
        The script applies the lifecycle: for every (from, to), the stored
        status changes exactly when L{check_transition} allows it.
        """
        n = 0
        for current in (None,) + STATUSES:
            for new in STATUSES:
                task_id = "t{}".format(n)
                n += 1
                if current is not None:
                    self.memory.execute_command("HSET", result_key(task_id), "status", current)
                stored = self.settle(self.store.record(task_id, new))
                try:
                    check_transition(current, new)
                except IllegalTransition:
                    self.assertEqual(stored, current, (current, new))
                else:
                    self.assertEqual(stored, new, (current, new))
        self.assertEqual(n, 72)

    def test_terminal_not_overwritten(self) -> None:
        """A later delivery cannot overwrite a stored result."""
        self.settle(self.store.record("t", SUCCEEDED, result=1))
        self.assertEqual(self.settle(self.store.record("t", STARTED)), SUCCEEDED)
        self.assertEqual(self.settle(self.store.status("t")).result, 1)

    def test_wait_already_done(self) -> None:
        """Waiting for a finished task fires at once."""
        self.settle(self.store.record("t", FAILED, error_type="E", error_message="m"))
        state = self.settle(self.store.wait("t", 5))
        self.assertEqual((state.status, state.error_type), (FAILED, "E"))

    def test_wait_is_pushed(self) -> None:
        """
        A waiter fires when the result is published, without any timer of
        its own (it does not poll).
        """
        d = self.store.wait("t", None)
        self.clock.advance(0)
        self.assertNoResult(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.settle(self.store.record("t", STARTED))
        self.assertNoResult(d)
        self.settle(self.store.record("t", SUCCEEDED, result="ok"))
        self.assertEqual(self.successResultOf(d).result, "ok")

    def test_wait_written_before_subscribe(self) -> None:
        """
        A result written while the subscription is being made (before the
        read) is found by the read that follows it.
        """
        self.memory.pause()
        d = self.store.wait("t", None)
        self.memory.execute_command("HSET", result_key("t"), "status", SUCCEEDED)
        self.memory.resume()
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).status, SUCCEEDED)

    def test_wait_across_reconnect(self) -> None:
        """
        A result published while the subscriber is reconnecting (a restart,
        a Sentinel failover: the publish is not replayed) is read once the
        subscription is back.
        """
        d = self.store.wait("t", None)
        self.clock.advance(0)
        self.settle(self.store.record("t", STARTED))
        self.memory.drop_connections()
        self.memory.execute_command("HSET", result_key("t"), "status", SUCCEEDED)
        self.memory.execute_command("PUBLISH", events_channel("t"), SUCCEEDED)
        self.assertNoResult(d)
        self.clock.advance(self.memory.reconnect_delay)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).status, SUCCEEDED)
        self.assertEqual(self.redis.pubsub.subscriptions(), [])

    def test_wait_timeout(self) -> None:
        """Past its timeout a wait fails with L{ResultTimeout} naming the last status."""
        self.settle(self.store.record("t", STARTED))
        d = self.store.wait("t", 2.0)
        self.clock.advance(1)
        self.assertNoResult(d)
        self.clock.advance(1)
        failure = self.failureResultOf(d, ResultTimeout)
        self.assertIn("started", str(failure.value))
        self.assertEqual(self.redis.pubsub.subscriptions(), [])

    def test_revoke(self) -> None:
        """
        A revoke lists the id (until the revoke TTL), marks a queued task
        revoked and is broadcast.
        """
        self.settle(self.store.pending("t", "add"))
        self.settle(self.store.revoke("t"))
        self.assertEqual(self.settle(self.store.status("t")).status, REVOKED)
        self.assertEqual(self.settle(self.store.revoked()), {"t": 1060.0})
        self.assertIn((REVOKE_CHANNEL.encode(), b"t"), self.memory.published)
        self.clock.advance(61)
        self.assertEqual(self.settle(self.store.revoked()), {})
        self.settle(self.store.revoke("u"))  # and the lapsed one is trimmed
        members = self.settle(self.redis.handler.execute_command("ZRANGE", REVOKED_KEY, 0, -1))
        self.assertEqual(list(members), ["u"])

    def test_revoke_running_left_to_worker(self) -> None:
        """A revoke does not mark a running task: its worker does, once cancelled."""
        self.settle(self.store.record("t", STARTED))
        self.settle(self.store.revoke("t"))
        self.assertEqual(self.settle(self.store.status("t")).status, STARTED)


def _catalog(gate: list[Deferred[Any]]) -> TaskCatalog:
    tasks = TaskCatalog()

    @tasks.task
    def add(x: int, y: int) -> int:
        return x + y

    @tasks.task(retry_for=(Exception,))
    def boom() -> None:
        raise ZeroDivisionError("no")

    @tasks.task
    async def slow() -> str:
        d: Deferred[str] = Deferred()
        gate.append(d)
        return await d

    return tasks


class HarnessResultsTests(SynchronousTestCase):
    """The real worker records states, on L{WorkerHarness} with C{results=}."""

    def setUp(self) -> None:
        needs_lua(self)
        self.clock = Clock()
        self.memory = MemoryRedis(self.clock)
        self.gate: list[Deferred[Any]] = []
        self.h = WorkerHarness(
            _catalog(self.gate), self.clock, results=self.memory.service(), name="w9"
        )

    def tearDown(self) -> None:
        self.h.stop()
        self.flushLoggedErrors()

    def test_succeeded(self) -> None:
        """A task's result, attempt, worker and timestamps are stored."""
        self.clock.advance(5)
        task_id = self.h.submit("add", 2, 3)
        state = self.h.task_state(task_id)
        assert state is not None
        self.assertEqual((state.status, state.result, state.task), (SUCCEEDED, 5, "add"))
        self.assertEqual((state.attempts, state.worker), (1, "w9"))
        self.assertEqual((state.started, state.finished), (5.0, 5.0))

    def test_retrying_then_failed(self) -> None:
        """A failing task is C{retrying} with its error, then C{failed}."""
        task_id = self.h.submit("boom")
        state = self.h.task_state(task_id)
        assert state is not None
        self.assertEqual((state.status, state.error_type), (RETRYING, "ZeroDivisionError"))
        self.h.run_until_idle()
        state = self.h.task_state(task_id)
        assert state is not None
        self.assertEqual((state.status, state.attempts, state.error_message), (FAILED, 4, "no"))

    def test_written_before_ack(self) -> None:
        """
        The delivery is acked only after the result is stored: while Redis
        holds its replies the message stays unacked.
        """
        self.memory.pause()
        task_id = self.h.submit("add", 1, 1)
        self.assertEqual(self.h.broker.unacked_count("tasks"), 1)
        self.memory.resume()
        self.h.advance(0)
        self.assertEqual(self.h.broker.unacked_count("tasks"), 0)
        self.assertEqual(self.h.task_state(task_id).status, SUCCEEDED)

    def test_result_not_stored_retried(self) -> None:
        """When the result cannot be stored the task is retried, not acked as done."""
        self.memory.fail_commands(ConnectionError("gone"))
        task_id = self.h.submit("add", 1, 1)
        self.memory.fail_commands(None)
        [retry] = self.h.retries(task_id)
        self.assertEqual(retry["attempt"], 1)
        self.assertEqual(self.h.worker.pipeline.results.write_failures, 1)
        self.h.run_until_idle()
        self.assertEqual(self.h.task_state(task_id).status, SUCCEEDED)

    def test_revoke_queued(self) -> None:
        """
        A revoked task is not run when delivered: it is dead-lettered with
        reason C{revoked} and its status is C{revoked}; no Redis round trip
        is made for the check.
        """
        self.h.revoke("queued-1")
        self.assertIn("queued-1", self.h.worker.pipeline.results.revoked_ids)
        self.h.submit("add", 1, 2, task_id="queued-1")
        self.assertEqual(self.h.attempts("queued-1"), 0)
        [dead] = self.h.dead_letters()
        self.assertEqual(dead.reason, "revoked")
        self.assertEqual(self.h.task_state("queued-1").status, REVOKED)
        self.assertEqual(self.h.outcome("queued-1").error_type, "TaskRevoked")

    def test_revoke_running(self) -> None:
        """A running task is cancelled by a revoke and recorded as C{revoked}."""
        task_id = self.h.submit("slow")
        self.assertEqual(self.h.task_state(task_id).status, STARTED)
        self.h.revoke(task_id)
        self.assertEqual(self.h.worker.running_tasks, {})
        self.assertEqual(self.h.task_state(task_id).status, REVOKED)
        [dead] = self.h.dead_letters()
        self.assertEqual(dead.reason, "revoked")

    def test_revoked_before_start_loaded(self) -> None:
        """Revokes made while the worker was down are loaded when it starts."""
        self.h.stop()
        other = WorkerHarness(_catalog([]), self.clock, results=self.memory.service(), start=False)
        other._store().redis.startService()
        other.revoke("early")
        other._store().redis.stopService()
        self.h = WorkerHarness(_catalog([]), self.clock, results=self.memory.service())
        self.assertTrue(self.h.worker.pipeline.results.revoked("early"))

    def test_revoked_in_store_cancels(self) -> None:
        """
        A task revoked in the store but missing from the local set (the
        broadcast was missed) is cancelled when its start is recorded.
        """
        self.memory.execute_command("HSET", result_key("missed"), "status", REVOKED)
        self.h.submit("slow", task_id="missed")
        self.assertEqual(self.h.worker.running_tasks, {})
        self.assertEqual([d.reason for d in self.h.dead_letters()], ["revoked"])

    def test_terminal_statuses(self) -> None:
        """Every status the worker can end a task in is terminal."""
        self.assertTrue({SUCCEEDED, FAILED, DEAD_LETTERED, REVOKED, EXPIRED} <= TERMINAL)


class ClientPendingTests(SynchronousTestCase):
    """L{TaskClient} with C{results=} records C{pending} before publishing."""

    def test_pending_then_succeeded(self) -> None:
        """The state reads C{pending} (name, submit time) until a worker runs it."""
        needs_lua(self)
        clock = Clock()
        clock.advance(7)
        h = WorkerHarness(_catalog([]), clock, results=MemoryRedis(clock).service())
        self.addCleanup(h.stop)
        h.worker.pause()
        client = TaskClient(h.connection, results=h.worker.results)
        d = client.submit("add", (1, 2), task_id="c1")
        h.advance(0)
        self.assertEqual(self.successResultOf(d), "c1")
        state = h.task_state("c1")
        assert state is not None
        self.assertEqual((state.status, state.task, state.created), (PENDING, "add", 7.0))
        h.worker.resume()
        h.advance(0)
        self.assertEqual(h.task_state("c1").result, 3)


class OneWritePerQuickTaskTests(SynchronousTestCase):
    """The start of a task settled in the same reactor turn is not written on its own."""

    def setUp(self) -> None:
        needs_lua(self)
        self.clock = Clock()
        self.memory = MemoryRedis(self.clock)
        self.gate: list[Deferred[Any]] = []
        self.h = WorkerHarness(_catalog(self.gate), self.clock, results=self.memory.service())
        self.addCleanup(self.h.stop)

    def statuses(self, task_id: str) -> list[bytes]:
        channel = events_channel(task_id).encode()
        return [m for c, m in self.memory.published if c == channel]

    def test_quick_task_one_write(self) -> None:
        """A quick task publishes one status: its start is written with its end."""
        task_id = self.h.submit("add", 1, 2)
        self.assertEqual(self.statuses(task_id), [b"succeeded"])
        state = self.h.task_state(task_id)
        assert state is not None
        self.assertEqual((state.attempts, state.started, state.worker), (1, 0.0, "harness"))

    def test_slow_task_started(self) -> None:
        """A task still running on the next turn has its start written then."""
        task_id = self.h.submit("slow")
        self.h.advance(0)
        self.assertEqual(self.statuses(task_id), [b"started"])
        self.gate[0].callback("done")
        self.h.advance(0)
        self.assertEqual(self.statuses(task_id), [b"started", b"succeeded"])

    def test_start_not_recorded(self) -> None:
        """A start that cannot be written is counted; the task runs on and its end is stored."""
        self.memory.fail_commands(ConnectionError("gone"))
        task_id = self.h.submit("slow")
        self.h.advance(0)
        self.memory.fail_commands(None)
        results = self.h.worker.pipeline.results
        assert results is not None
        self.assertEqual(results.start_failures, 1)
        self.gate[0].callback("done")
        self.h.advance(0)
        self.assertEqual(self.h.task_state(task_id).result, "done")


class WiringTests(SynchronousTestCase):
    """C{--results} on C{twistd txmsg-worker} and L{WorkerService}."""

    def test_options_and_service(self) -> None:
        """
        C{--results URL --results-ttl S} give the worker a store with that
        TTL on its own Redis service (child C{results}); a bad URL or TTL is
        a usage error; without the option there is no store.
        """

        def parse(*args: str) -> Options:
            options = Options()
            options.parseOptions(["--tasks", "txmsg.test._worker_tasks_sample", *args])
            return options

        worker = makeService(
            parse("--results", "redis://127.0.0.1:6399/2", "--results-ttl", "60"),
            reactor=Clock(),
        )
        assert worker.results is not None
        self.assertEqual(worker.results.ttl, 60)
        self.assertIs(worker.getServiceNamed("results"), worker.results.redis)
        self.assertIsNotNone(worker.pipeline.results)
        self.assertIsNone(makeService(parse(), reactor=Clock()).results)
        self.assertRaises(UsageError, parse, "--results", "http://x")
        self.assertRaises(UsageError, parse, "--results-ttl", "0")

    def test_same_redis_shared(self) -> None:
        """With C{--results} equal to C{--redis}, one Redis service serves both."""
        url = "redis://127.0.0.1:6399/0"
        worker = WorkerService(
            TaskCatalog(), redis_url=url, results_url=url, reactor=Clock(), name="w"
        )
        assert worker.results is not None
        self.assertIs(worker.results.redis, worker.redis)

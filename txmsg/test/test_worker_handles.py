# -*- test-case-name: txmsg.test.test_worker_handles -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for typed task handles (L{txmsg.worker.handles}), signatures
(L{txmsg.worker.signature}), task references and the client they send
with, on the in-memory broker.
"""

import json
import operator
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txmsg.tap import worker as worker_tap
from txmsg.test._optional import missing
from txmsg.testing import MemoryRedis, WorkerHarness
from txmsg.worker import TaskCatalog, send_cli
from txmsg.worker.brokers.amqp import work_queue
from txmsg.worker.client import TaskClient, TaskFailed
from txmsg.worker.handles import NoResultStore, TaskHandle, TaskRef
from txmsg.worker.result_store import IResultStore
from txmsg.worker.signature import NoClient, Signature, resolve_times


def _catalog() -> TaskCatalog:
    tasks = TaskCatalog()

    @tasks.task
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @tasks.task(name="greet", max_retries=0)
    async def hello(name: str, punctuation: str = "!") -> str:
        return "hello " + name + punctuation

    return tasks


class HandleTests(SynchronousTestCase):
    """
    What C{@tasks.task} returns.
    """

    def test_callable_as_the_function(self) -> None:
        """
        The handle calls the function itself and looks like it.
        """
        tasks = _catalog()
        add = tasks.get("add").function
        handle = _handle(tasks, "add")
        self.assertEqual(handle(2, 3), 5)
        self.assertEqual((handle.__name__, handle.__doc__), ("add", "Add two numbers."))
        self.assertIs(handle.__wrapped__, add)
        self.assertEqual(handle.name, "add")

    def test_signature_value(self) -> None:
        """
        C{s()} is a frozen value: equal for equal calls, JSON round trip,
        options added by copy.
        """
        handle = _handle(_catalog(), "greet")
        sig = handle.s("ada", punctuation="?")
        self.assertEqual(sig, Signature("greet", ("ada",), {"punctuation": "?"}))
        self.assertEqual(hash(sig), hash(Signature("greet", ("ada",), {"punctuation": "?"})))
        again = Signature.from_dict(json.loads(json.dumps(sig.to_dict())))
        self.assertEqual(again, sig)
        later = sig.with_options(priority=3, countdown=5)
        self.assertEqual(dict(later.options), {"priority": 3, "countdown": 5})
        self.assertEqual(dict(sig.options), {})
        self.assertRaises(TypeError, operator.setitem, sig.kwargs, "x", 1)
        self.assertRaises(TypeError, sig.with_options, colour="red")

    def test_no_client(self) -> None:
        """
        Sending without a client and with an unbound catalog names both
        ways to give one.
        """
        handle = _handle(_catalog(), "add")
        e = self.assertRaises(NoClient, handle.send, 1, 2)
        self.assertIn("client=", str(e))
        self.assertIn("tasks.bind(client)", str(e))


def _handle(tasks: TaskCatalog, name: str) -> TaskHandle[Any, Any, Any]:
    spec = tasks.get(name)
    assert spec is not None
    return TaskHandle(spec.function, spec, tasks)


class SendTests(SynchronousTestCase):
    """
    Sending through a handle, on the harness's broker and clock.
    """

    def setUp(self) -> None:
        self.tasks = TaskCatalog()

        @self.tasks.task
        def add(a: int, b: int) -> int:
            return a + b

        self.add = add
        self.h = WorkerHarness(self.tasks, max_priority=10)
        self.h.advance(1000)  # a clock that is not at 0
        self.tasks.bind(self.h.client)

    def tearDown(self) -> None:
        self.tasks.bind(None)
        self.successResultOf(self.h.stop())

    def sent(self) -> list[Any]:
        return [m for m in self.h.broker.published if m.routing_key == "tasks"]

    def test_send(self) -> None:
        """
        C{send} publishes a plain v1 task and fires with a L{TaskRef}; the
        worker runs it.
        """
        d = self.add.send(2, 3)
        self.h.advance(0)
        ref = self.successResultOf(d)
        self.assertIsInstance(ref, TaskRef)
        [message] = self.sent()
        body = json.loads(message.body)
        self.assertEqual(body, {"task": "add", "args": [2, 3], "kwargs": {}, "id": ref.id})
        self.assertEqual(self.h.attempts(ref.id), 1)

    def test_send_options(self) -> None:
        """
        Send options go in the v2 envelope (times from the client's clock)
        and the message properties (priority).
        """
        d = self.add.s(2, 3).send(countdown=5, expires=60, priority=7, task_id="t1")
        self.h.advance(0)
        self.assertEqual(self.successResultOf(d).id, "t1")
        [message] = [m for m in self.h.broker.published if m.properties.message_id == "t1"]
        self.assertNotEqual(message.exchange, "")  # waits in the broker's delay levels
        body = json.loads(message.body)
        self.assertEqual((body["v"], body["eta"], body["expires"]), (2, 1005.0, 1060.0))
        self.assertEqual(message.properties.priority, 7)
        self.assertEqual(self.h.attempts("t1"), 0)  # not due yet
        self.h.advance(5)
        self.assertEqual(self.h.attempts("t1"), 1)

    def test_explicit_client(self) -> None:
        """
        C{client=} wins over the catalog's bound client.
        """
        other = TaskClient(self.h.connection, queue="elsewhere")
        d = self.add.s(1, 1).send(client=other)
        self.h.advance(0)
        self.failureResultOf(d)  # no such queue: returned
        self.assertEqual([m.routing_key for m in self.h.broker.published][-1], "elsewhere")

    def test_call(self) -> None:
        """
        C{call} runs the task on the worker and fires with its result.
        """
        d = self.add.call(20, 22)
        self.h.advance(0)
        self.assertEqual(self.successResultOf(d), 42)

    def test_call_failure(self) -> None:
        """
        A failed call is a L{TaskFailed} with the error type.
        """
        d = self.h.client.call("nope", (), timeout=5)
        self.h.advance(0)
        self.assertEqual(self.failureResultOf(d, TaskFailed).value.error_type, "UnknownTask")

    def test_bad_options(self) -> None:
        """
        Contradictory or invalid options fail at once.
        """
        self.assertRaises(ValueError, self.add.s(1, 2).send, countdown=1, eta=5)
        self.assertRaises(ValueError, self.add.s(1, 2).send, priority=256)
        self.assertRaises(ValueError, self.add.s(1, 2).send, countdown=10, expires=5)
        self.assertRaises(TypeError, self.add.s(1, 2).send, countdown="soon")

    def test_priority_overtakes(self) -> None:
        """
        On a worker with C{max_priority}, a task sent with a higher priority
        behind queued ones runs first.
        """
        self.h.worker.pause()
        self.h.advance(0)
        for i in range(5):
            self.add.s(i, 0).send(task_id="low{}".format(i))
        self.add.s(9, 9).send(priority=5, task_id="high")
        self.h.advance(0)
        self.h.worker.resume()
        self.h.run_until_idle()
        order = [run[0] for run in self.h.runs]
        self.assertEqual(order, ["high", "low0", "low1", "low2", "low3", "low4"])


@implementer(IResultStore)
class FakeStore:
    """
    A results store that knows fixed states.
    """

    def __init__(self, states: dict[str, Any]) -> None:
        self.states = states
        self.revoked: list[str] = []

    def status(self, task_id: str) -> Deferred[Any]:
        return succeed(self.states.get(task_id))

    def wait(self, task_id: str, timeout: float | None) -> Deferred[Any]:
        return succeed(self.states[task_id])

    def revoke(self, task_id: str) -> Deferred[None]:
        self.revoked.append(task_id)
        return succeed(None)


class State:
    def __init__(self, status: str, result: Any = None, error: Any = None) -> None:
        self.status, self.result, self.error = status, result, error


class TaskRefTests(SynchronousTestCase):
    """
    L{TaskRef} delegates to the results store.
    """

    def test_fake_store_provides_interface(self) -> None:
        """
        The interface is what the fake implements.
        """
        self.assertTrue(verifyObject(IResultStore, FakeStore({})))

    def test_result_status_revoke(self) -> None:
        """
        A succeeded task's result; any state; revoke by id.
        """
        store = FakeStore({"a": State("succeeded", 5), "b": State("started")})
        self.assertEqual(self.successResultOf(TaskRef("a", "add", store).result(3)), 5)
        self.assertEqual(
            self.successResultOf(TaskRef("b", "add", store).status()).status, "started"
        )
        self.assertIsNone(self.successResultOf(TaskRef("c", "add", store).status()))
        self.successResultOf(TaskRef("b", "add", store).revoke())
        self.assertEqual(store.revoked, ["b"])

    def test_unsuccessful(self) -> None:
        """
        A failed, revoked or expired task's result is a L{TaskFailed}.
        """
        store = FakeStore(
            {
                "f": State("failed", error={"type": "ValueError", "message": "bad"}),
                "r": State("revoked"),
                "x": State("expired"),
                "d": State("dead-lettered"),
            }
        )
        store.states["d"].error_type, store.states["d"].error_message = "KeyError", "k"
        f = self.failureResultOf(TaskRef("d", "t", store).result(), TaskFailed)
        self.assertEqual((f.value.error_type, f.value.message), ("KeyError", "k"))
        for task_id, error_type in (
            ("f", "ValueError"),
            ("r", "TaskRevoked"),
            ("x", "TaskExpired"),
        ):
            f = self.failureResultOf(TaskRef(task_id, "t", store).result(), TaskFailed)
            self.assertEqual(f.value.error_type, error_type)

    def test_no_store(self) -> None:
        """
        Without a store, each method raises L{NoResultStore} naming the
        option.
        """
        ref = TaskRef("a", "add")
        for method in (ref.result, ref.status, ref.revoke):
            e = self.assertRaises(NoResultStore, method)
            self.assertIn("results=", str(e))
            self.assertIn("--results", str(e))


class ResolveTimesTests(SynchronousTestCase):
    """
    L{resolve_times}: send options to absolute times.
    """

    def test_times(self) -> None:
        """
        Countdowns and relative expiries count from now; ETAs and datetimes
        are absolute.
        """
        self.assertEqual(resolve_times(100.0), (None, None))
        self.assertEqual(resolve_times(100.0, countdown=5, expires=10), (105.0, 110.0))
        self.assertEqual(resolve_times(100.0, eta=150), (150.0, None))
        when = datetime(2030, 1, 1, tzinfo=timezone.utc)
        self.assertEqual(resolve_times(100.0, eta=when, expires=when)[1], when.timestamp())

    def test_refused(self) -> None:
        """
        Naive datetimes, negative countdowns and expiry before the ETA are
        refused.
        """
        self.assertRaises(ValueError, resolve_times, 0.0, eta=datetime(2030, 1, 1))
        self.assertRaises(ValueError, resolve_times, 0.0, countdown=-1)
        self.assertRaises(ValueError, resolve_times, 0.0, eta=10, expires=5)
        self.assertRaises(TypeError, resolve_times, 0.0, eta=float("inf"))


class PriorityOptionTests(SynchronousTestCase):
    """
    C{--max-priority} on the worker, and the queue it declares.
    """

    def parse(self, *args: str) -> Any:
        options = worker_tap.Options()
        options.parseOptions(["--tasks", "txmsg.test._worker_tasks_sample", *args])
        return options

    def test_option(self) -> None:
        """
        The option is a whole number from 1 to 255, for classic queues.
        """
        self.assertEqual(self.parse("--max-priority", "10")["max-priority"], 10)
        self.assertIsNone(self.parse()["max-priority"])
        for bad in (["--max-priority", "0"], ["--max-priority", "256"]):
            self.assertRaises(UsageError, self.parse, *bad)
        e = self.assertRaises(
            UsageError, self.parse, "--max-priority", "5", "--queue-type", "quorum"
        )
        self.assertIn("classic", str(e))

    def test_declared(self) -> None:
        """
        The work queue (only) is declared with C{x-max-priority}, and
        L{work_queue} gives a client the same declaration.
        """
        h = WorkerHarness(_catalog(), max_priority=10)
        self.addCleanup(lambda: self.successResultOf(h.stop()))
        declared = h.broker.queue("tasks").arguments
        self.assertEqual(declared, work_queue("tasks", max_priority=10).arguments)
        self.assertEqual(declared, {"x-max-priority": 10})
        self.assertEqual(h.broker.queue("tasks.dead").arguments, {})


class SendCommandTests(SynchronousTestCase):
    """
    C{txmsg send --priority/--expires}.
    """

    def parse(self, *args: str) -> Any:
        options = send_cli.Options()
        options.parseOptions(["add", "1", *args])
        return options

    def test_options(self) -> None:
        """
        Both are optional; the priority is 0 to 255, the expiry positive.
        """
        options = self.parse("--priority", "9", "--expires", "60")
        self.assertEqual((options["priority"], options["expires"]), (9, 60.0))
        self.assertEqual((self.parse()["priority"], self.parse()["expires"]), (None, None))
        for bad in (["--priority", "256"], ["--priority", "-1"], ["--expires", "0"]):
            self.assertRaises(UsageError, self.parse, *bad)


class TaskRefStoreTests(SynchronousTestCase):
    """
    L{TaskRef} on the real results store, through the worker that records
    the states (in-memory Redis and broker).
    """

    def setUp(self) -> None:
        reason = missing("lupa", extra="testing")
        if reason is not None:
            raise SkipTest(reason)
        self.clock = Clock()
        self.tasks = _catalog()
        self.h = WorkerHarness(self.tasks, self.clock, results=MemoryRedis(self.clock).service())
        self.client = TaskClient(self.h.connection, results=self.h.worker.results)
        self.tasks.bind(self.client)

    def tearDown(self) -> None:
        self.tasks.bind(None)
        self.successResultOf(self.h.stop())

    def settle(self, d: Deferred[Any]) -> Any:
        self.h.advance(0)
        return self.successResultOf(d)

    def test_result_and_status(self) -> None:
        """
        A sent task's result and status read through its reference.
        """
        add = _handle(self.tasks, "add")
        d = add.send(2, 3)
        self.h.advance(0)
        ref = self.successResultOf(d)
        self.assertEqual(self.settle(ref.result(timeout=5)), 5)
        self.assertEqual(self.settle(ref.status()).status, "succeeded")

    def test_revoke_queued(self) -> None:
        """
        A task revoked while it waits for its countdown is not run; its
        result is a L{TaskFailed} C{TaskRevoked}.
        """
        d = _handle(self.tasks, "add").s(1, 1).send(countdown=10)
        self.h.advance(0)
        ref = self.successResultOf(d)
        self.settle(ref.revoke())
        self.h.advance(10)
        self.h.run_until_idle()
        self.assertEqual(self.h.attempts(ref.id), 0)
        self.assertEqual(self.settle(ref.status()).status, "revoked")
        result = ref.result(timeout=1)
        self.h.advance(0)
        f = self.failureResultOf(result, TaskFailed)
        self.assertIn("Revoked", f.value.error_type)

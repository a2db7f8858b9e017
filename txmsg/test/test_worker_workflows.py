# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.workflows}, L{txmsg.worker.workflow_store} and
L{txmsg.worker.workflow_steps}: chains, groups and chords on the real worker
(L{WorkerHarness}) with an in-memory Redis running the real scripts, on a
fake clock; including the redelivery and duplicate cases of chords.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._optional import fuzz
from txmsg.test.test_worker_results import needs_lua
from txmsg.testing import MemoryRedis, WorkerHarness
from txmsg.worker import workflow_steps
from txmsg.worker.client import TaskClient
from txmsg.worker.envelope import CONTENT_TYPE, Task, encode_task
from txmsg.worker.handles import NoResultStore
from txmsg.worker.headers import ONCE_HEADER
from txmsg.worker.results import RedisResultStore
from txmsg.worker.signature import Signature
from txmsg.worker.states import FAILED, SUCCEEDED
from txmsg.worker.tasks import TaskCatalog
from txmsg.worker.workflow_store import member_done, save_plan, stage_key
from txmsg.worker.workflows import (
    WORKFLOW_HEADER,
    Chain,
    Plan,
    chain,
    chord,
    group,
    member_id,
    parse_member,
    stage_messages,
)


def _catalog(log: list[tuple[str, Any]]) -> TaskCatalog:
    tasks = TaskCatalog()

    @tasks.task
    def add(x: int, y: int) -> int:
        log.append(("add", (x, y)))
        return x + y

    @tasks.task
    def square(x: int) -> int:
        log.append(("square", x))
        return x * x

    @tasks.task
    def total(values: list[int]) -> int:
        log.append(("total", values))
        return sum(values)

    @tasks.task(max_retries=0)
    def boom(x: int) -> int:
        raise ZeroDivisionError("boom {}".format(x))

    @tasks.task
    def opaque(x: int) -> object:
        return object()

    @tasks.task
    def on_error(error: dict[str, Any], tag: str) -> None:
        log.append(("on_error", (error["task_id"], error["error_type"], tag)))

    return tasks


class BuildingTests(SynchronousTestCase):
    """Building and planning workflows: pure."""

    def sig(self, name: str, *args: Any) -> Any:
        return Signature(name, args)

    def test_chain_flattens(self) -> None:
        """Chains, groups and chords flatten into one list of stages."""
        inner = chain(self.sig("a", 1), self.sig("b"))
        c = chord(group([self.sig("s", 1), self.sig("s", 2)]), self.sig("t"))
        plan = Plan.of(chain(inner, c, self.sig("z")), "wf1")
        self.assertEqual(
            [(len(s.signatures), s.is_group) for s in plan.stages],
            [(1, False), (1, False), (2, True), (1, False), (1, False)],
        )
        self.assertEqual(Plan.from_json(plan.to_json()), plan)

    def test_group_alone(self) -> None:
        """A group is a one-stage plan; generators work."""
        plan = Plan.of(group(self.sig("s", i) for i in range(3)), "g")
        self.assertEqual(len(plan.stages), 1)
        self.assertTrue(plan.stages[0].is_group)

    def test_previous_result_prepended(self) -> None:
        """A stage's signatures get the previous result first, then their own arguments."""
        plan = Plan.of(chain(self.sig("a", 1), self.sig("b", 7)), "wf")
        ((task_id, sig, args, headers),) = stage_messages(plan, 1, [5])
        self.assertEqual((task_id, sig.task, args), ("wf:1", "b", (5, 7)))
        self.assertEqual(headers, {ONCE_HEADER: 1, WORKFLOW_HEADER: "wf/1/0"})
        self.assertEqual(member_id("wf", 0, 3, True), "wf:0:3")

    def test_bad_input(self) -> None:
        """Errors name what is wrong."""
        self.assertRaises(ValueError, group, [])
        self.assertRaises(TypeError, group, [1])
        self.assertRaises(TypeError, chain, "x")
        self.assertRaises(TypeError, chord, [self.sig("a")], "cb")
        self.assertRaises(TypeError, chain, self.sig("a"), link_error=[3])
        self.assertRaises(ValueError, Plan.of, Chain((self.sig("a"),)), "bad/id")

    def test_link_error_collected(self) -> None:
        """link_error of nested workflows is gathered into the plan."""
        e1, e2 = self.sig("e1"), self.sig("e2")
        c = chord(group([self.sig("a")], link_error=e1), self.sig("t"), link_error=[e2])
        plan = Plan.of(chain(c), "wf")
        self.assertEqual(set(plan.link_error), {e1, e2})

    def test_parse_member(self) -> None:
        """Only header values a client writes parse."""
        self.assertEqual(parse_member(b"wf-1/2/30"), ("wf-1", 2, 30))
        for bad in (None, 3, "wf", "wf/x/1", "w f/1/1", "wf/1/1/1", "/1/1"):
            self.assertIsNone(parse_member(bad), bad)


class ParseMemberFuzzTests(SynchronousTestCase):
    """The workflow header is wire input: anything parses or is refused."""

    @fuzz(
        lambda st: st.one_of(
            st.text(max_size=60),
            st.binary(max_size=60),
            st.integers(),
            st.none(),
            st.builds("{}/{}/{}".format, st.text(max_size=10), st.integers(), st.integers()),
        )
    )
    def test_fuzz(self, value: Any) -> None:
        """A member, with the parts a client writes, or L{None}."""
        member = parse_member(value)
        if member is not None:
            workflow_id, stage, index = member
            self.assertGreaterEqual(min(stage, index), 0)
            self.assertEqual(parse_member("{}/{}/{}".format(*member)), member)
            self.assertTrue(workflow_id)


class WorkflowHarnessTests(SynchronousTestCase):
    """Workflows on the real worker, a memory broker and a memory Redis."""

    def setUp(self) -> None:
        needs_lua(self)
        self.clock = Clock()
        self.memory = MemoryRedis(self.clock)
        self.log: list[tuple[str, Any]] = []
        self.tasks = _catalog(self.log)
        self.h = self.harness("w1")
        self.store = RedisResultStore(self.memory.service(), clock=self.clock)
        self.store.redis.startService()
        self.client = TaskClient(self.h.connection, queue="tasks", results=self.store)
        self.clock.advance(0)

    def harness(self, name: str, **kw: Any) -> WorkerHarness:
        return WorkerHarness(
            self.tasks,
            self.clock,
            broker=getattr(self, "h", None) and self.h.broker,
            results=self.memory.service(),
            redis=self.memory.service(),
            name=name,
            **kw,
        )

    def tearDown(self) -> None:
        self.h.stop()
        self.store.redis.stopService()
        self.clock.advance(0)
        self.flushLoggedErrors()

    def send(self, workflow: Any, **kw: Any) -> Any:
        d = workflow.send(self.client, **kw)
        self.h.run_until_idle()
        return self.successResultOf(d)

    def state(self, ref: Any) -> Any:
        return self.successResultOf(ref.status())

    def runs(self, name: str) -> list[Any]:
        return [args for task, args in self.log if task == name]

    def s(self, name: str, *args: Any) -> Any:
        return Signature(name, args)

    def test_chain(self) -> None:
        """Each link gets the previous result first; the chain's result is the last one."""
        ref = self.send(chain(self.s("add", 1, 2), self.s("add", 10), self.s("square")))
        self.assertEqual(self.runs("add"), [(1, 2), (3, 10)])
        self.assertEqual(self.runs("square"), [13])
        state = self.state(ref)
        self.assertEqual((state.status, state.result), (SUCCEEDED, 169))
        d = ref.result()
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d), 169)

    def test_group_in_order(self) -> None:
        """A group's result is its members' results in the group's order."""
        ref = self.send(group(self.s("square", i) for i in range(100)))
        self.assertEqual(self.state(ref).result, [i * i for i in range(100)])

    def test_chord_callback_once(self) -> None:
        """The callback runs once, with every result, after all members."""
        ref = self.send(chord(group(self.s("square", i) for i in range(10)), self.s("total")))
        self.assertEqual(self.runs("total"), [[i * i for i in range(10)]])
        self.assertEqual(self.log[-1][0], "total")
        self.assertEqual(self.state(ref).result, 285)

    def test_pending_then_started(self) -> None:
        """A workflow is pending when sent, started once a member finished."""
        d = chain(self.s("add", 1, 2), self.s("square")).send(self.client)
        self.clock.advance(0)
        ref = self.successResultOf(d)
        self.assertIn(self.state(ref).status, ("pending", "started", SUCCEEDED))
        self.h.run_until_idle()
        self.assertEqual(self.state(ref).status, SUCCEEDED)

    def test_member_fails(self) -> None:
        """
        A member failing for good fails the chord: the callback does not run,
        link_error runs once, the workflow is C{failed} naming the member.
        """
        members = [self.s("square", 1), self.s("boom", 2), self.s("square", 3)]
        ref = self.send(
            chord(group(members), self.s("total"), link_error=self.s("on_error", "tag"))
        )
        self.assertEqual(self.runs("total"), [])
        self.assertEqual(self.runs("on_error"), [(ref.id + ":0:1", "ZeroDivisionError", "tag")])
        state = self.state(ref)
        self.assertEqual((state.status, state.error_type), (FAILED, "ZeroDivisionError"))
        self.assertIn(ref.id + ":0:1", state.error_message)

    def test_chain_stops_at_failure(self) -> None:
        """A chain's links after a failed one are never sent."""
        ref = self.send(
            chain(self.s("boom", 1), self.s("square"), link_error=[self.s("on_error", "c")])
        )
        self.assertEqual(self.runs("square"), [])
        self.assertEqual(len(self.runs("on_error")), 1)
        self.assertEqual(self.state(ref).status, FAILED)

    def redeliver(self, task: str, args: tuple[Any, ...], task_id: str, header: str) -> None:
        """Publish a copy of a member, as a redelivery would bring it."""
        self.h.connection.publish(
            "",
            "tasks",
            encode_task(Task(task, args, {}, task_id)),
            content_type=CONTENT_TYPE,
            message_id=task_id,
            headers={ONCE_HEADER: 1, WORKFLOW_HEADER: header},
        )
        self.h.run_until_idle()

    def test_redelivered_member_counts_once(self) -> None:
        """
        A member delivered again after the chord completed (its first
        worker died after the result, before the ack): it does not run
        again (once claim), does not count twice, and the callback it
        publishes again runs no second time.
        """
        ref = self.send(chord(group(self.s("square", i) for i in range(3)), self.s("total")))
        self.redeliver("square", (2,), ref.id + ":0:2", ref.id + "/0/2")
        self.assertEqual(self.runs("square"), [0, 1, 2])
        self.assertEqual(len(self.runs("total")), 1)
        self.assertEqual(self.state(ref).result, 5)

    def test_member_run_twice_counts_once(self) -> None:
        """
        A member that ran twice (its claim lapsed, or it is not once) is
        counted once: the first result stays, the callback runs once.
        """
        d = chord(group(self.s("square", i) for i in range(3)), self.s("total")).send(self.client)
        self.clock.advance(0)
        ref = self.successResultOf(d)
        self.h.run_until_idle()
        handler = self.store.redis.handler
        self.successResultOf(handler.execute_command("DEL", "txmsg:task-ran:" + ref.id + ":0:1"))
        self.successResultOf(handler.execute_command("DEL", "txmsg:task-ran:" + ref.id + ":1"))
        self.redeliver("square", (1,), ref.id + ":0:1", ref.id + "/0/1")
        self.assertEqual(self.runs("square"), [0, 1, 2, 1])
        self.assertEqual(self.runs("total"), [[0, 1, 4], [0, 1, 4]])  # claim deleted by hand
        stored = self.successResultOf(handler.hgetall(stage_key(ref.id, 0)))
        self.assertEqual(len(stored), 3)

    def test_died_before_callback_published(self) -> None:
        """
        The last member's worker died after its result was stored and
        before it published the callback: the redelivery finds the stage
        complete and publishes the callback, which runs once.
        """
        plan = Plan.of(chord(group(self.s("square", i) for i in range(2)), self.s("total")), "wfx")
        handler = self.store.redis.handler
        self.successResultOf(save_plan(handler, plan, 60))
        self.successResultOf(member_done(handler, "wfx", 0, 0, 2, "0", 60))
        self.successResultOf(
            member_done(handler, "wfx", 0, 1, 2, "1", 60)
        )  # result in, no callback
        self.successResultOf(handler.set("txmsg:task-ran:wfx:0:1", "dead-worker"))
        self.redeliver("square", (1,), "wfx:0:1", "wfx/0/1")
        self.redeliver("square", (1,), "wfx:0:1", "wfx/0/1")  # twice: still once
        self.assertEqual(self.runs("square"), [])
        self.assertEqual(self.runs("total"), [[0, 1]])

    def test_two_workers(self) -> None:
        """Two workers sharing the queue: every callback once."""
        other = self.harness("w2")
        try:
            ref = self.send(chord(group(self.s("square", i) for i in range(20)), self.s("total")))
            self.assertEqual(len(self.runs("total")), 1)
            self.assertEqual(self.state(ref).result, sum(i * i for i in range(20)))
        finally:
            other.stop()

    def test_needs_a_result_store(self) -> None:
        """Sending without a results store names the option."""
        client = TaskClient(self.h.connection)
        self.assertRaises(NoResultStore, chain(self.s("add", 1, 2)).send, client)

    def test_bad_header_ignored(self) -> None:
        """A task with a workflow header no client writes runs, with a warning."""
        self.redeliver("square", (4,), "t1", "no-good")
        self.assertEqual(self.runs("square"), [4])
        self.assertTrue(any("bad" in m for m in self.h.log_messages()))

    def test_plan_json(self) -> None:
        """The stored plan is JSON."""
        ref = self.send(chain(self.s("add", 1, 2)))
        text = self.successResultOf(self.store.redis.handler.get("txmsg:{wf:" + ref.id + "}:plan"))
        self.assertEqual(json.loads(text)["id"], ref.id)

    def test_member_lost_with_its_worker(self) -> None:
        """
        A member whose worker died while running it (its id claimed, no
        result): while the claiming worker is alive (in the roster) the
        redelivery waits; once it is gone, the claim is taken back and the
        member runs again; the callback runs once.
        """
        plan = Plan.of(chord(group(self.s("square", i) for i in range(2)), self.s("total")), "wfk")
        handler = self.store.redis.handler
        self.successResultOf(save_plan(handler, plan, 600))
        self.successResultOf(member_done(handler, "wfk", 0, 0, 2, "0", 600))
        self.successResultOf(handler.set("txmsg:task-ran:wfk:0:1", "w-dead"))
        self.successResultOf(handler.set("txmsg:worker:w-dead", "{}", expire=12))
        self.h.connection.publish(
            "",
            "tasks",
            encode_task(Task("square", (1,), {}, "wfk:0:1")),
            content_type=CONTENT_TYPE,
            message_id="wfk:0:1",
            headers={ONCE_HEADER: 1, WORKFLOW_HEADER: "wfk/0/1"},
        )
        self.clock.advance(0)
        self.h.advance(10)
        self.assertEqual(self.runs("square"), [])  # w-dead still in the roster
        self.h.run_until_idle(limit=60)
        self.assertEqual(self.runs("square"), [1])
        self.assertEqual(self.runs("total"), [[0, 1]])

    def test_chain_through_a_group(self) -> None:
        """A group inside a chain: each member gets the previous result; the next link the list."""
        ref = self.send(
            chain(self.s("add", 1, 2), group([self.s("add", 1), self.s("add", 2)]), self.s("total"))
        )
        self.assertEqual(self.runs("add"), [(1, 2), (3, 1), (3, 2)])
        self.assertEqual(self.state(ref).result, 9)

    def test_redis_fails_during_step(self) -> None:
        """
        When the member's result cannot be counted, the member is retried
        (its once claim given back), not acked without its follow-up; the
        callback still runs once.
        """
        real = workflow_steps.member_done
        failures = [1]

        def flaky(*args: Any) -> Any:
            if failures:
                failures.pop()
                return fail(ConnectionError("Redis went away"))
            return real(*args)

        self.patch(workflow_steps, "member_done", flaky)
        ref = self.send(chord(group(self.s("square", i) for i in range(3)), self.s("total")))
        self.assertEqual(len(self.h.retries()), 1)
        self.assertEqual(sorted(self.runs("square")), [0, 0, 1, 2])
        self.assertEqual(self.runs("total"), [[0, 1, 4]])
        self.assertEqual(self.state(ref).result, 5)

    def test_unserializable_result_fails_the_workflow(self) -> None:
        """A member whose result JSON cannot carry fails the workflow (no retry loop)."""
        ref = self.send(chord(group([self.s("square", 1), self.s("opaque", 2)]), self.s("total")))
        state = self.state(ref)
        self.assertEqual((state.status, state.error_type), (FAILED, "UnserializableResult"))
        self.assertEqual(self.runs("total"), [])
        self.assertEqual(self.h.retries(), [])

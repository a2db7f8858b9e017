# -*- test-case-name: txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the worker's client side: L{txmsg.worker.client}, the console
commands' parsing and formatting, and L{txmsg.worker.roster}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.control import ControlTimeout
from txmsg.testing import MemoryBroker
from txmsg.worker import dead_letters_cli, send_cli, workers_cli
from txmsg.worker.client import TaskClient, TaskFailed
from txmsg.worker.envelope import encode_error, encode_result
from txmsg.worker.roster import list_workers, register_worker, unregister_worker


class SendOptionsTests(SynchronousTestCase):
    """
    Tests for C{txmsg send}'s options.
    """

    def parse(self, *args: str) -> send_cli.Options:
        options = send_cli.Options()
        options.parseOptions(list(args))
        return options

    def test_arguments_are_json_or_text(self) -> None:
        """
        Positional arguments are JSON values, or plain strings when not JSON.
        """
        options = self.parse("greet", "3", "hello", '"quoted"', "[1, 2]", "null")
        self.assertEqual(options["task"], "greet")
        self.assertEqual(options["args"], [3, "hello", "quoted", [1, 2], None])

    def test_options_after_arguments(self) -> None:
        """
        Options may follow the arguments; C{--} passes a dash-led argument.
        """
        options = self.parse("add", "1", "2", "--queue", "q", "--wait", "-t", "5")
        self.assertEqual((options["queue"], options["wait"], options["timeout"]), ("q", 1, 5.0))
        self.assertEqual(options["args"], [1, 2])
        self.assertEqual(self.parse("neg", "--", "-1")["args"], [-1])

    def test_kwargs(self) -> None:
        """
        C{--kwargs} must be a JSON object.
        """
        self.assertEqual(self.parse("t", "--kwargs", '{"a": 1}')["kwargs"], {"a": 1})
        self.assertRaises(UsageError, self.parse, "t", "--kwargs", "[1]")
        self.assertRaises(UsageError, self.parse, "t", "--kwargs", "{nope")

    def test_bad_numbers(self) -> None:
        """
        Counts and timeouts must be positive numbers.
        """
        self.assertRaises(UsageError, self.parse, "t", "--count", "0")
        self.assertRaises(UsageError, self.parse, "t", "--timeout", "x")

    def test_countdown_and_eta(self) -> None:
        """
        C{--countdown} is seconds; C{--eta} a UNIX time or ISO 8601 (UTC
        when no zone is named); they exclude each other and C{--wait}.
        """
        self.assertEqual(self.parse("t", "--countdown", "2.5")["countdown"], 2.5)
        self.assertEqual(self.parse("t", "--eta", "1900000000")["eta"], 1900000000.0)
        self.assertEqual(self.parse("t", "--eta", "2030-01-01T00:00:00")["eta"], 1893456000.0)
        self.assertEqual(self.parse("t", "--eta", "2030-01-01T01:00:00+01:00")["eta"], 1893456000.0)
        self.assertRaises(UsageError, self.parse, "t", "--eta", "tomorrow")
        self.assertRaises(UsageError, self.parse, "t", "--countdown", "-1")
        self.assertRaises(UsageError, self.parse, "t", "--countdown", "1", "--eta", "5")
        self.assertRaises(UsageError, self.parse, "t", "--countdown", "1", "--wait")


class DeadLettersTests(SynchronousTestCase):
    """
    Tests for C{txmsg dead-letters}' parsing and formatting.
    """

    def test_queue_name(self) -> None:
        """
        The work queue or its C{.dead} queue may be named.
        """
        for name in ("jobs", "jobs.dead"):
            options = dead_letters_cli.Options()
            options.parseOptions([name])
            self.assertEqual(options["queue"], "jobs")

    def test_requeue_and_purge_exclusive(self) -> None:
        """
        C{--requeue} and C{--purge} cannot be combined.
        """
        options = dead_letters_cli.Options()
        self.assertRaises(UsageError, options.parseOptions, ["jobs", "--requeue", "--purge"])

    def test_describe(self) -> None:
        """
        A dead letter is described by its task, reason, error and attempts.
        """
        info = dead_letters_cli.describe(
            b'{"task": "add", "id": "i1", "args": []}',
            {
                "x-txmsg-reason": "failed",
                "x-txmsg-error-type": "ValueError",
                "x-txmsg-error-message": "bad",
                "x-txmsg-attempts": 4,
            },
        )
        self.assertEqual(
            (info["task"], info["id"], info["reason"], info["error"], info["attempts"]),
            ("add", "i1", "failed", "ValueError: bad", 4),
        )
        self.assertIsNone(dead_letters_cli.describe(b"\xff junk", {})["task"])


class LiveStatusesTests(SynchronousTestCase):
    """
    Tests for L{workers_cli.live_statuses}: C{txmsg workers} shows what
    C{txmsg control NAME status} shows.
    """

    def test_live_reply_wins_over_the_heartbeat(self) -> None:
        """
        A worker that answers C{status} is shown with its live counters,
        not with the (older) ones of its last heartbeat.
        """
        stale = {"name": "w1", "counts": {"dead_lettered": 0}, "time": 1.0}
        live = {
            "name": "w1",
            "state": "running",
            "queues": ["q"],
            "counts": {"dead_lettered": 2},
            "time": 9.0,
        }
        asked: list[str] = []

        def ask(name: str) -> Any:
            asked.append(name)
            return succeed({"id": "x", "ok": True, "result": live})

        shown = self.successResultOf(
            Deferred.fromCoroutine(workers_cli.live_statuses([stale], ask))
        )
        self.assertEqual(asked, ["w1"])
        self.assertEqual(shown, [live])
        row = workers_cli.format_workers(shown, 9.0).splitlines()[1].split()
        self.assertEqual(row[6], "2")  # DEAD

    def test_silent_worker_keeps_its_registry_entry(self) -> None:
        """
        A worker that does not answer (or answers with an error) is shown as
        its registry entry says.
        """
        entries = [{"name": "w1"}, {"name": "w2"}]
        replies = {"w1": fail(ControlTimeout("no reply")), "w2": succeed({"ok": False})}
        shown = self.successResultOf(
            Deferred.fromCoroutine(workers_cli.live_statuses(entries, replies.__getitem__))
        )
        self.assertEqual(shown, entries)


class FormatWorkersTests(SynchronousTestCase):
    """
    Tests for L{workers_cli.format_workers}.
    """

    def test_table(self) -> None:
        """
        One row per worker with its state, queues, counters and heartbeat age.
        """
        table = workers_cli.format_workers(
            [
                {
                    "name": "w1",
                    "state": "running",
                    "queues": ["a", "b"],
                    "running": [{}],
                    "counts": {"succeeded": 7, "failed": 1, "dead_lettered": 0},
                    "uptime": 61,
                    "time": 100.0,
                }
            ],
            now=103.0,
        )
        header, row = table.splitlines()
        self.assertEqual(
            row.split(), ["w1", "running", "a,b", "1", "7", "1", "0", "61s", "3s", "ago"]
        )
        self.assertIn("NAME", header)

    def test_empty(self) -> None:
        """
        No workers: a sentence that says how workers register.
        """
        self.assertIn("--redis", workers_cli.format_workers([], 0))


class FakeRedis:
    """
    The few commands the worker registry uses, in memory.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sets: dict[str, set[str]] = {}
        self.expiry: dict[str, int] = {}

    def set(self, key: str, value: str, expire: int | None = None) -> Any:
        self.data[key] = value
        if expire is not None:
            self.expiry[key] = expire
        return succeed("OK")

    def get(self, key: str) -> Any:
        return succeed(self.data.get(key))

    def delete(self, key: str) -> Any:
        return succeed(int(self.data.pop(key, None) is not None))

    def sadd(self, key: str, member: str) -> Any:
        self.sets.setdefault(key, set()).add(member)
        return succeed(1)

    def srem(self, key: str, member: str) -> Any:
        self.sets.get(key, set()).discard(member)
        return succeed(1)

    def smembers(self, key: str) -> Any:
        return succeed(set(self.sets.get(key, set())))


class RegistryTests(SynchronousTestCase):
    """
    Tests for L{txmsg.worker.roster}.
    """

    def test_register_list_unregister(self) -> None:
        """
        A registered worker is listed with its status and a TTL; an expired
        one is dropped from the set; an unregistered one is gone.
        """
        redis = FakeRedis()
        self.successResultOf(register_worker(redis, {"name": "w1", "state": "running"}, ttl=14.5))
        self.successResultOf(register_worker(redis, {"name": "w2", "state": "running"}, ttl=15))
        self.assertEqual(redis.expiry["txmsg:worker:w1"], 15)
        del redis.data["txmsg:worker:w2"]  # its TTL ran out
        workers = self.successResultOf(Deferred.fromCoroutine(list_workers(redis)))
        self.assertEqual([w["name"] for w in workers], ["w1"])
        self.assertEqual(redis.sets["txmsg:workers"], {"w1"})
        self.successResultOf(unregister_worker(redis, "w1"))
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(list_workers(redis))), [])


class TaskClientTests(SynchronousTestCase):
    """
    Tests for L{TaskClient}, on the in-memory broker.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.broker.declare_queue("jobs")
        self.amqp = self.broker.connection(reactor=self.clock)
        self.amqp.startService()
        self.addCleanup(self.amqp.stopService)
        self.client = TaskClient(self.amqp, queue="jobs")
        self.clock.advance(0)

    def test_submit_without_wait(self) -> None:
        """
        C{submit} publishes a persistent v1 task and fires with its id once
        confirmed.
        """
        self.broker.hold_confirms()
        d = self.client.submit("add", (1, 2), task_id="t1")
        self.clock.advance(0)
        [message] = self.broker.messages("jobs")
        self.assertEqual(message.routing_key, "jobs")
        self.assertEqual(
            json.loads(message.body), {"task": "add", "args": [1, 2], "kwargs": {}, "id": "t1"}
        )
        props = message.properties
        self.assertEqual((props.delivery_mode, props.message_id), (2, "t1"))
        self.assertEqual(props.content_type, "application/json")
        self.assertNoResult(d)
        self.broker.release_confirms()
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d), "t1")

    def test_submit_and_wait(self) -> None:
        """
        With C{wait}, the result of the reply is returned; an error reply is
        a L{TaskFailed}.
        """
        server = self.broker.connection(reactor=self.clock)

        def serve(delivery: Any) -> Any:
            body = json.loads(delivery.body)
            reply = (
                encode_result(body["id"], 3)
                if body["task"] == "add"
                else encode_error(body["id"], "ZeroDivisionError", "nope")
            )
            return server.publish(
                "",
                delivery.reply_to,
                reply,
                correlation_id=delivery.correlation_id,
                persistent=False,
                mandatory=False,  # RabbitMQ returns mandatory direct replies (delivered too)
            )

        server.consume("jobs", serve)
        server.startService()
        self.addCleanup(server.stopService)
        ok = self.client.submit("add", (1, 2), wait=True, task_id="t2")
        failed = self.client.submit("boom", wait=True, task_id="t3")
        for _ in range(5):
            self.clock.advance(0)
        self.assertEqual(self.successResultOf(ok), 3)
        f = self.failureResultOf(failed, TaskFailed)
        self.assertEqual((f.value.error_type, f.value.message), ("ZeroDivisionError", "nope"))

    def test_countdown(self) -> None:
        """
        With C{countdown} (or C{eta}) the task waits in the broker's delay
        levels and reaches the queue no earlier than asked.
        """
        self.clock.advance(100)
        d = self.client.submit("add", (1, 2), task_id="t4", countdown=1.5)
        e = self.client.submit("add", (1, 2), task_id="t5", eta=102.0)
        self.clock.advance(0)
        self.assertEqual((self.successResultOf(d), self.successResultOf(e)), ("t4", "t5"))
        self.clock.advance(1.49)
        self.assertEqual(self.broker.message_count("jobs"), 0)
        self.clock.advance(0.01)
        [m] = self.broker.messages("jobs")
        self.assertEqual(
            (m.properties.message_id, m.properties.content_type), ("t4", "application/json")
        )
        self.clock.advance(0.5)
        self.assertEqual(self.broker.message_count("jobs"), 2)
        self.assertRaises(ValueError, self.client.submit, "t", countdown=1, wait=True)
        self.assertRaises(ValueError, self.client.submit, "t", countdown=1, eta=5.0)

    def test_unserializable(self) -> None:
        """
        Arguments JSON cannot carry are refused at once.
        """
        self.assertRaises(TypeError, self.client.submit, "t", (object(),))

# -*- test-case-name: txmsg.test.test_redis_control -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.control} and L{txmsg.redis.control_cli} options.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis._delivery import Message
from txmsg.redis.control import ControlListener, MalformedCommand, parse_command
from txmsg.redis.control_cli import Options


class ParseCommandTests(SynchronousTestCase):
    """
    Tests for L{parse_command}.
    """

    def test_rq_commands(self) -> None:
        """
        The JSON RQ 3.0 publishes parses into command and arguments.
        """
        self.assertEqual(parse_command(b'{"command": "shutdown"}').command, "shutdown")
        c = parse_command(json.dumps({"command": "stop-job", "job_id": "j1"}))
        self.assertEqual(
            (c.command, dict(c.args), c.reply_to), ("stop-job", {"job_id": "j1"}, None)
        )
        c = parse_command(b'{"command": "ping", "reply_to": "r", "id": 5}')
        self.assertEqual((c.reply_to, c.id, dict(c.args)), ("r", "5", {}))

    def test_malformed(self) -> None:
        """
        Non-JSON, non-objects, a missing command, stop-job without job_id and
        a non-string reply_to are L{MalformedCommand}.
        """
        for raw in (
            b"shutdown",
            b"[1]",
            b'{"cmd": "x"}',
            b'{"command": 3}',
            b'{"command": "stop-job"}',
            b'{"command": "stop-execution", "job_id": "j"}',
            b'{"command": "ping", "reply_to": 1}',
        ):
            self.assertRaises(MalformedCommand, parse_command, raw)


class FakePubSub:
    def __init__(self) -> None:
        self.subscribed: list[tuple[str, Any]] = []

    def subscribe(self, channel: str, callback: Any) -> Any:
        self.subscribed.append((channel, callback))
        return _FakeSub()


class _FakeSub:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeHandler:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []

    def publish(self, channel: str, payload: Any) -> Deferred[int]:
        self.published.append((channel, json.loads(payload)))
        return succeed(1)


class FakeConnection:
    def __init__(self) -> None:
        self.handler = FakeHandler()


def msg(payload: Any) -> Message:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message("rq:pubsub:w1", raw, None, raw)


class ControlListenerTests(SynchronousTestCase):
    """
    Tests for L{ControlListener}.
    """

    def setUp(self) -> None:
        self.pubsub = FakePubSub()
        self.conn = FakeConnection()
        self.seen: list[Any] = []
        self.listener = ControlListener(
            "w1",
            self.pubsub,
            self.conn,
            {
                "shutdown": self.seen.append,
                "stop-job": lambda c: self.seen.append(c.args["job_id"]),
            },
            status=lambda: {"busy": True},
        )
        self.listener.startService()

    def test_channel(self) -> None:
        """
        The listener subscribes to C{rq:pubsub:<name>}, RQ's channel, and
        unsubscribes when stopped.
        """
        self.assertEqual(self.pubsub.subscribed[0][0], "rq:pubsub:w1")
        sub = self.listener._sub
        self.listener.stopService()
        self.assertTrue(sub.cancelled)

    def test_rq_commands_dispatched(self) -> None:
        """
        RQ's shutdown and stop-job commands reach the owner's handlers.
        """
        self.listener.handle_message(msg({"command": "shutdown"}))
        self.listener.handle_message(msg({"command": "stop-job", "job_id": "j9"}))
        self.assertEqual(self.seen[0].command, "shutdown")
        self.assertEqual(self.seen[1], "j9")
        self.assertEqual(self.conn.handler.published, [])

    def test_ping_reply(self) -> None:
        """
        C{ping} publishes a reply with the caller's id on C{reply_to}.
        """
        self.listener.handle_message(msg({"command": "ping", "reply_to": "r1", "id": "a"}))
        ((channel, body),) = self.conn.handler.published
        self.assertEqual(
            (channel, body["id"], body["ok"], body["result"]["name"]),
            ("r1", "a", True, "w1"),
        )

    def test_status_reply(self) -> None:
        """
        C{status} replies with what the status callable returns.
        """
        self.listener.handle_message(msg({"command": "status", "reply_to": "r"}))
        self.assertEqual(self.conn.handler.published[0][1]["result"], {"busy": True})

    def test_handler_failure_reply(self) -> None:
        """
        A failing handler is logged; with C{reply_to} the error is replied.
        """

        def broken(c):
            raise ValueError("nope")

        self.listener.register("boom", broken)
        self.listener.handle_message(msg({"command": "boom", "reply_to": "r"}))
        body = self.conn.handler.published[0][1]
        self.assertEqual((body["ok"], body["error"]["type"]), (False, "ValueError"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_unknown_and_malformed_ignored(self) -> None:
        """
        Unknown and malformed commands are counted and ignored; an unknown
        command asking for a reply gets an error reply.
        """
        self.listener.handle_message(msg({"command": "dance"}))
        self.listener.handle_message(msg(b"not json"))
        self.listener.handle_message(msg({"command": "ping"}))
        self.assertEqual((self.listener.stats["unknown"], self.listener.stats["malformed"]), (1, 1))
        self.assertEqual(self.conn.handler.published, [])
        self.listener.handle_message(msg({"command": "dance", "reply_to": "r"}))
        self.assertFalse(self.conn.handler.published[0][1]["ok"])

    def test_deferred_handler(self) -> None:
        """
        A handler returning a Deferred is replied to when it fires.
        """
        d: Deferred[Any] = Deferred()
        self.listener.register("slow", lambda c: d)
        self.listener.handle_message(msg({"command": "slow", "reply_to": "r"}))
        self.assertEqual(self.conn.handler.published, [])
        d.callback(7)
        self.assertEqual(self.conn.handler.published[0][1]["result"], 7)


class ControlOptionsTests(SynchronousTestCase):
    """
    Tests for L{txmsg.redis.control_cli.Options}.
    """

    def test_parse(self) -> None:
        """
        NAME COMMAND and key=value arguments are parsed; stop-job accepts a
        bare job id; the URL comes from C{--redis}.
        """
        o = Options()
        o.parseOptions(["--redis", "redis://h:1/2", "-t", "3", "w1", "stop-job", "abc"])
        self.assertEqual(
            (o["name"], o["command"], o["args"]), ("w1", "stop-job", {"job_id": "abc"})
        )
        self.assertEqual((o["url"].host, o["url"].db, o["timeout"]), ("h", 2, 3.0))

    def test_env_default(self) -> None:
        """
        Without C{--redis}, C{TXMSG_REDIS_URL} is used.
        """
        self.patch(os, "environ", {"TXMSG_REDIS_URL": "redis://envhost:7/0"})
        o = Options()
        o.parseOptions(["w1", "ping"])
        self.assertEqual(o["url"].host, "envhost")

    def test_errors(self) -> None:
        """
        Missing arguments, a bare argument for other commands, and a bad URL
        are usage errors.
        """
        self.assertRaises(usage.UsageError, Options().parseOptions, ["w1"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["w1", "ping", "x"])
        self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["--redis", "http://x", "w1", "ping"],
        )

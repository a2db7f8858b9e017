# -*- test-case-name: txmsg.test.test_tap_dashboard -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for C{twistd txmsg-dashboard} (L{txmsg.tap.dashboard}) and the
worker's C{--dashboard}.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.tap import dashboard as tap
from txmsg.tap import worker as worker_tap
from txmsg.test._dashboard_support import body, code, request

ENV = ("TXMSG_AMQP_URL", "TXMSG_REDIS_URL", tap.TOKEN_ENV_VAR, tap.MANAGEMENT_ENV_VAR)


def parse(*args: str, options: Any = tap.Options) -> Any:
    parsed = options()
    parsed.parseOptions(list(args))
    return parsed


class OptionsTests(SynchronousTestCase):
    """
    The options and the rule that only loopback goes without credentials.
    """

    def setUp(self) -> None:
        saved = {k: os.environ.pop(k, None) for k in ENV}

        def restore() -> None:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v

        self.addCleanup(restore)

    def auth_file(self) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("ops:pw\n")
        return path

    def test_defaults(self) -> None:
        """
        Loopback port 8082, five-second samples, an hour of history, no
        credentials, actions allowed.
        """
        o = parse()
        self.assertEqual(
            (o["listen"], o["interval"], o["history"], o["checkers"], o["read-only"]),
            ("tcp:8082:interface=127.0.0.1", 5.0, 3600.0, [], 0),
        )

    def test_remote_needs_credentials(self) -> None:
        """
        Any other interface without credentials refuses to start, in one
        line naming the way out.
        """
        e = self.assertRaises(UsageError, parse, "--listen", "tcp:8082:interface=0.0.0.0")
        self.assertIn("--auth-file", str(e))
        self.assertNotIn("\n", str(e))
        o = parse("--listen", "tcp:8082:interface=0.0.0.0", "--auth-file", self.auth_file())
        self.assertEqual((len(o["checkers"]), o["insecure"]), (1, True))
        self.assertFalse(parse("--auth-file", self.auth_file())["insecure"])
        os.environ[tap.TOKEN_ENV_VAR] = "x" * 32
        o = parse("--listen", "tcp:8082:interface=10.0.0.1")
        self.assertEqual(len(o["checkers"]), 1)

    def test_bad_values(self) -> None:
        """
        A short token, an unreadable file, a bad endpoint or management URL,
        or C{--health}: one-line usage errors.
        """
        os.environ[tap.TOKEN_ENV_VAR] = "short"
        self.assertRaises(UsageError, parse)
        del os.environ[tap.TOKEN_ENV_VAR]
        for args in (
            ["--token-file", self.mktemp()],
            ["--auth-file", self.mktemp()],
            ["--listen", "bogus:1"],
            ["--management", "amqp://x"],
            ["--health", "tcp:8081"],
            ["--interval", "0"],
        ):
            self.assertRaises(UsageError, parse, *args)

    def test_schedule(self) -> None:
        """
        C{--schedule} loads the scheduler's module for the schedule page; a
        bad one is a usage error.
        """
        o = parse("--schedule", "txmsg.test._schedule_sample", "--schedule-name", "s1")
        self.assertEqual(
            (sorted(e.name for e in o["schedule"]), o["schedule-name"]), (["fast", "nightly"], "s1")
        )
        self.assertRaises(UsageError, parse, "--schedule", "txmsg.test.no_such_module")

    def test_token_file(self) -> None:
        """
        A token file gives a token checker.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("t" * 24 + "\n")
        self.assertEqual(len(parse("--token-file", path)["checkers"]), 1)


class MakeServiceTests(SynchronousTestCase):
    """
    The service makeService builds.
    """

    def test_listens_and_protects(self) -> None:
        """
        The dashboard listens where told; on a non-loopback bind a request
        without credentials is a 401, with them it is the overview.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("ops:pw\n")
        reactor = MemoryReactorClock()
        options = parse(
            "--listen",
            "tcp:18082:interface=0.0.0.0",
            "--auth-file",
            path,
            "--queue",
            "jobs",
            "--amqp",
            "amqp://guest:guest@127.0.0.1:1/%2F",
        )
        service = tap.makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port, factory, _, interface = reactor.tcpServers[0]
        site: Any = factory
        self.assertEqual((port, interface), (18082, "0.0.0.0"))
        self.assertEqual(code(request(site.resource, b"")), 401)
        self.assertEqual(code(request(site.resource, b"api/overview")), 401)
        auth = b"Basic " + base64.b64encode(b"ops:pw")
        ok = request(site.resource, b"api/overview", headers={b"authorization": auth})
        self.assertEqual(json.loads(body(ok))["queues"][0]["queue"], "jobs")

    def test_loopback_without_credentials(self) -> None:
        """
        On loopback the pages need no credentials.
        """
        reactor = MemoryReactorClock()
        service = tap.makeService(parse("--amqp", "amqp://127.0.0.1:1/"), reactor)
        self.assertEqual(code(request(service.site.resource, b"schedule")), 200)


class WorkerMountTests(SynchronousTestCase):
    """
    The worker's C{--dashboard}.
    """

    SAMPLE = "txmsg.test._worker_tasks_sample"

    def test_needs_loopback_health(self) -> None:
        """
        C{--dashboard} needs a loopback C{--health} endpoint.
        """
        for extra in ([], ["--health", "tcp:8081:interface=0.0.0.0"]):
            self.assertRaises(
                UsageError,
                parse,
                "--tasks",
                self.SAMPLE,
                "--dashboard",
                *extra,
                options=worker_tap.Options,
            )

    def test_mounted(self) -> None:
        """
        With C{--dashboard}, the health port serves it at C{/dashboard/}
        beside C{/metrics}, which gains the queue figures.
        """
        options = parse(
            "--tasks",
            self.SAMPLE,
            "--queue",
            "jobs",
            "--health",
            "tcp:18081",
            "--dashboard",
            options=worker_tap.Options,
        )
        worker = worker_tap.makeService(options, reactor=MemoryReactorClock())
        health = worker.getServiceNamed("health")
        root = health.site.resource
        html = body(request(root, b"dashboard/")).decode()
        self.assertIn('<base href="/dashboard/">', html)
        self.assertIn("jobs", body(request(root, b"dashboard/api/overview")).decode())
        self.assertIn(b"txmsg_queue_consumers", body(request(root, b"metrics")))

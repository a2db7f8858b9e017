# -*- test-case-name: txmsg.test.test_ops_options -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.ops.options} and the C{--health}/C{--log-format} wiring
of the twistd plugins.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txmsg.ops import logs
from txmsg.ops.service import HealthService, echo_checks
from txmsg.tap import echo as echo_tap
from txmsg.tap import worker as worker_tap

SAMPLE = "txmsg.test._worker_tasks_sample"


def parse(options_class: Any, *args: str, parent: dict[str, Any] | None = None) -> Any:
    options = options_class()
    if parent is not None:
        options.parent = parent
    options.parseOptions(list(args))
    return options


class OpsOptionsTests(SynchronousTestCase):
    """
    C{--health} and C{--log-format} on both plugins.
    """

    def setUp(self) -> None:
        saved = dict(logs._twistd_destination)
        self.addCleanup(logs._twistd_destination.update, saved)

    def test_defaults(self) -> None:
        """
        No health endpoint and text logs unless asked for.
        """
        for options in (
            parse(echo_tap.Options),
            parse(worker_tap.Options, "--tasks", SAMPLE),
        ):
            self.assertIsNone(options["health"])
            self.assertEqual(options["log-format"], "text")

    def test_health_loopback_by_default(self) -> None:
        """
        A TCP health endpoint without C{interface=} listens on loopback;
        an explicit interface is kept.
        """
        options = parse(echo_tap.Options, "--health", "tcp:8081")
        self.assertEqual(options["health"], "tcp:8081:interface=127.0.0.1")
        options = parse(
            worker_tap.Options,
            "--tasks",
            SAMPLE,
            "--health",
            "tcp:8081:interface=0.0.0.0",
        )
        self.assertEqual(options["health"], "tcp:8081:interface=0.0.0.0")

    def test_bad_values(self) -> None:
        """
        A bad endpoint or log format is a usage error.
        """
        self.assertRaises(UsageError, parse, echo_tap.Options, "--health", "bogus:1")
        self.assertRaises(
            UsageError,
            parse,
            worker_tap.Options,
            "--tasks",
            SAMPLE,
            "--log-format",
            "xml",
        )

    def test_installs_twistd_logger(self) -> None:
        """
        Under twistd, the plugin names its redacting observer as twistd's
        logger, remembering twistd's log file.
        """
        parent = {"logger": None, "logfile": "/tmp/x.log", "nodaemon": False}
        parse(worker_tap.Options, "--tasks", SAMPLE, "--log-format", "json", parent=parent)
        self.assertEqual(parent["logger"], "txmsg.ops.logs.twistd_json_observer")
        self.assertEqual(logs._twistd_destination, {"logfile": "/tmp/x.log", "nodaemon": False})
        parent = {"logger": None, "logfile": None, "nodaemon": True}
        parse(echo_tap.Options, parent=parent)
        self.assertEqual(parent["logger"], "txmsg.ops.logs.twistd_text_observer")

    def test_respects_twistd_logger(self) -> None:
        """
        twistd's own C{--logger} wins over text logs, and conflicts with
        C{--log-format json}.
        """
        parent = {"logger": "my.observer", "logfile": None, "nodaemon": True}
        parse(echo_tap.Options, parent=parent)
        self.assertEqual(parent["logger"], "my.observer")
        self.assertRaises(
            UsageError, parse, echo_tap.Options, "--log-format", "json", parent=parent
        )


class PluginWiringTests(SynchronousTestCase):
    """
    makeService adds a L{HealthService} listening on the endpoint.
    """

    def test_echo(self) -> None:
        """
        The echo service gets a C{health} child listening on loopback; none
        without C{--health}.
        """
        reactor = MemoryReactorClock()
        service = echo_tap.makeService(parse(echo_tap.Options, "--health", "tcp:18081"), reactor)
        self.assertIsInstance(service.getServiceNamed("health"), HealthService)
        checks = echo_checks(service)
        self.assertEqual([c.ok for c in checks()], [False, False])
        service.startService()
        self.assertIn((18081, "127.0.0.1"), [(p[0], p[3]) for p in reactor.tcpServers])
        self.assertEqual(
            [(c.name, c.ok) for c in checks()],
            [("echo", True), ("listen:" + echo_tap.DEFAULT_LISTEN, True)],
        )
        service.stopService()
        plain = echo_tap.makeService(parse(echo_tap.Options), MemoryReactorClock())
        self.assertRaises(KeyError, plain.getServiceNamed, "health")

    def test_worker(self) -> None:
        """
        The worker gets a C{health} child serving its metrics.
        """
        reactor = MemoryReactorClock()
        worker = worker_tap.makeService(
            parse(worker_tap.Options, "--tasks", SAMPLE, "--health", "tcp:18082"),
            reactor,
        )
        health = worker.getServiceNamed("health")
        self.assertIsNotNone(
            health.registry.get_sample_value("txmsg_worker_state", {"state": "stopped"})
        )
        health.privilegedStartService()
        self.assertIn((18082, "127.0.0.1"), [(p[0], p[3]) for p in reactor.tcpServers])

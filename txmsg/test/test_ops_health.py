# -*- test-case-name: txmsg.test.test_ops_health -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.ops.health} resources and L{txmsg.ops.lag}.
"""

from __future__ import annotations

import json
from typing import Any

from OpenSSL.SSL import Error as SSLError
from prometheus_client import CollectorRegistry, Counter
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest

from txmsg.ops.health import Check, HealthRoot
from txmsg.ops.lag import ReactorLagMonitor
from txmsg.ops.service import worker_checks
from txmsg.testing import MemoryBroker


def render(
    root: Any, path: bytes, accept: bytes | None = None
) -> tuple[int, dict[bytes, Any], bytes]:
    """
    Render C{path} (no leading slash) of C{root} as a GET; return the code,
    the response headers and the body.
    """
    request = DummyRequest(path.split(b"/"))
    if accept is not None:
        request.requestHeaders.setRawHeaders(b"accept", [accept])
    resource = getChildForRequest(root, request)
    body = resource.render(request)
    headers = dict(request.responseHeaders.getAllRawHeaders())
    return request.responseCode or 200, headers, body


class ReactorLagMonitorTests(SynchronousTestCase):
    """
    L{ReactorLagMonitor} on a Clock.
    """

    def test_lag(self) -> None:
        """
        A tick that fires late records how late; the largest lag is kept;
        stopping leaves nothing scheduled.
        """
        clock = Clock()
        lag = ReactorLagMonitor(interval=1.0, reactor=clock)
        lag.startService()
        clock.advance(1.0)
        self.assertEqual((lag.lag, lag.ticks), (0.0, 1))
        clock.advance(3.5)  # the reactor was busy: the tick due at 2.0 fires at 4.5
        self.assertEqual(lag.lag, 2.5)
        clock.advance(0.5)
        self.assertEqual((lag.lag, lag.max_lag, lag.uptime()), (0.0, 2.5, 5.0))
        lag.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_interval_positive(self) -> None:
        """
        The interval must be positive.
        """
        self.assertRaises(ValueError, ReactorLagMonitor, 0)


class HealthRootTests(SynchronousTestCase):
    """
    C{/}, C{/live}, C{/ready} and C{/metrics}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.lag = ReactorLagMonitor(reactor=self.clock)
        self.checks = [
            Check("amqp", True, "connected"),
            Check("consumer:tasks", True, "consuming"),
        ]
        self.registry = CollectorRegistry()
        self.counter = Counter("things", "Things done.", registry=self.registry)
        self.root = HealthRoot(self.lag, lambda: self.checks, self.registry)

    def test_live(self) -> None:
        """
        C{/live} answers 200 with the reactor lag as JSON.
        """
        self.lag.startService()
        self.clock.advance(1.25)  # one tick, 0.25s late
        code, headers, body = render(self.root, b"live")
        self.lag.stopService()
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"Content-Type"], [b"application/json"])
        payload = json.loads(body)
        self.assertEqual(payload["status"], "alive")
        self.assertEqual(payload["reactor_lag_seconds"], 0.25)
        self.assertEqual(payload["uptime_seconds"], 1.25)

    def test_ready(self) -> None:
        """
        C{/ready} answers 200 when every check passes.
        """
        code, _, body = render(self.root, b"ready")
        self.assertEqual(code, 200)
        payload = json.loads(body)
        self.assertEqual((payload["status"], payload["missing"]), ("ready", []))
        self.assertEqual(payload["checks"]["amqp"], {"ok": True, "detail": "connected"})

    def test_not_ready(self) -> None:
        """
        C{/ready} answers 503 naming the failing checks, and re-runs the
        checks on every request.
        """
        self.checks[0] = Check("amqp", False, "not connected to amqp://guest:***@h/")
        code, _, body = render(self.root, b"ready")
        self.assertEqual(code, 503)
        payload = json.loads(body)
        self.assertEqual((payload["status"], payload["missing"]), ("not ready", ["amqp"]))
        self.assertFalse(payload["checks"]["amqp"]["ok"])
        self.checks[0] = Check("amqp", True)
        self.assertEqual(render(self.root, b"ready")[0], 200)

    def test_metrics(self) -> None:
        """
        C{/metrics} serves the registry in the Prometheus text format,
        collected at request time.
        """
        self.counter.inc(3)
        code, headers, body = render(self.root, b"metrics")
        self.assertEqual(code, 200)
        self.assertTrue(headers[b"Content-Type"][0].startswith(b"text/plain; version=0.0.4"))
        self.assertIn(b"things_total 3.0", body)
        self.counter.inc()
        self.assertIn(b"things_total 4.0", render(self.root, b"metrics")[2])

    def test_metrics_openmetrics(self) -> None:
        """
        A scraper asking for OpenMetrics gets it.
        """
        code, headers, body = render(
            self.root, b"metrics", accept=b"application/openmetrics-text; version=1.0.0"
        )
        self.assertTrue(headers[b"Content-Type"][0].startswith(b"application/openmetrics-text"))
        self.assertTrue(body.endswith(b"# EOF\n"))

    def test_index_and_unknown(self) -> None:
        """
        C{/} lists the endpoints; an unknown path is a 404.
        """
        code, _, body = render(self.root, b"")
        self.assertEqual(
            (code, json.loads(body)),
            (200, {"endpoints": ["/live", "/ready", "/metrics"]}),
        )
        self.assertEqual(render(self.root, b"nope")[0], 404)


class WorkerChecksTests(SynchronousTestCase):
    """
    Tests for L{txmsg.ops.service.worker_checks}.
    """

    def test_setup_failure_named(self) -> None:
        """
        While the AMQP set-up fails for a reason the user must fix (here a
        failed TLS handshake; a refused login the same), the C{amqp} check
        gives that reason in one line, without the password.
        """
        amqp = MemoryBroker(Clock()).connection(url="amqp://guest:secret@broker.example:5672/%2F")
        worker = type(
            "W",
            (),
            {"state": "running", "amqp": amqp, "consumers": {}, "queues": [], "redis": None},
        )()
        check = worker_checks(worker)
        self.assertEqual(
            check()[1], Check("amqp", False, "not connected to " + amqp.address.redacted)
        )
        with capturedLogs():
            amqp._protocol_failed(
                object(), SSLError([("SSL routines", "", "certificate verify failed")])
            )
        detail = check()[1].detail
        self.assertTrue(
            detail.startswith("TLS certificate verification failed for amqp://guest:***@"), detail
        )
        self.assertNotIn("secret", detail)

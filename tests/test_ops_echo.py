# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Integration test: C{twistd -n txmsg-echo --health ...} shows its
connections and bytes in C{/metrics}.
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import TestCase

from tests._ops_support import get, metrics, run_plugin, value, wait_until
from tests._process import free_port


class EchoMetricsTests(TestCase):
    """
    The echo plugin's health endpoint.
    """

    timeout = 60

    def test_connections_and_bytes(self) -> None:
        """
        After echoing over two connections, /metrics counts them and their
        bytes; /ready and /live answer 200.
        """
        port = free_port()
        process, base = run_plugin("txmsg-echo", ["--listen", f"tcp:{port}"])
        self.addCleanup(process.cleanup)
        self.assertEqual(get(base + "/ready")[0], 200)
        payload = b"x" * 1000
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(held.close)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += s.recv(65536)
        self.assertEqual(received, payload)

        def counted() -> dict:
            samples = metrics(base)
            return samples if value(samples, "txmsg_echo_connections_total") == 2 else {}

        samples = wait_until(counted, 10, "two connections in /metrics")
        self.assertEqual(value(samples, "txmsg_echo_bytes_total", direction="in"), 1000)
        self.assertEqual(value(samples, "txmsg_echo_bytes_total", direction="out"), 1000)
        self.assertEqual(value(samples, "txmsg_echo_connections_open"), 1)
        self.assertEqual(get(base + "/live")[0], 200)
        status = process.terminate()
        process.assert_clean_stop(status)

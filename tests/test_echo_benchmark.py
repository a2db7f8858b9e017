# -*- test-case-name: tests.test_echo_benchmark -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Smoke test of C{benchmarks/echo.py}: the C generator builds, every server
starts, and a short run yields sane, error-free results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "echo.py")


class EchoBenchmarkSmokeTests(TestCase):
    """
    Run the echo benchmark for a fraction of a second per scenario.
    """

    def test_quick_run(self) -> None:
        """
        A short run against the C ceiling, txmsg-echo and wire.Echo completes,
        prints the verdict line and saves JSON where every scenario has a
        positive rate and no failed connection for every server.
        """
        out = os.path.abspath(self.mktemp())
        servers = ["c-epoll", "txmsg-echo", "wire.Echo"]
        proc = subprocess.run(
            [
                sys.executable,
                SCRIPT,
                "--quick",
                "--duration",
                "0.3",
                "--servers",
                ",".join(servers),
                "--json",
                out,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("VERDICT: txmsg-echo / wire.Echo", proc.stdout)
        with open(out) as f:
            medians = json.load(f)["medians"]
        self.assertEqual(sorted(medians), ["pp1", "pp50", "stream"])
        for scenario, by_server in medians.items():
            self.assertEqual(sorted(by_server), sorted(servers))
            for name, m in by_server.items():
                key = "mb_s" if scenario == "stream" else "rps"
                self.assertGreater(m[key], 0, (scenario, name))
                self.assertEqual(m["errors"], 0, (scenario, name))

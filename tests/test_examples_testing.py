# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The "Testing your handlers" examples run without any server: the server URLs
point nowhere (port 1) and every outgoing socket connection is refused in the
child process, so a test that touched Redis or RabbitMQ would fail.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_GUARD = """
import socket, sys
def refuse(self, address, *a, **k):
    raise OSError("no network allowed in this test: connect to %r" % (address,))
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
sys.argv = ["trial"] + sys.argv[1:]
from twisted.scripts.trial import run
run()
"""


class ExampleTestsWithoutServersTests(TestCase):
    """C{examples/test_example_*.py} pass with no server reachable."""

    def test_examples_pass_offline(self) -> None:
        """Both example test modules pass with the URLs at port 1 and no sockets."""
        env = dict(os.environ)
        env.update(
            PYTHONPATH=ROOT,
            TXMSG_AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F",
            TXMSG_REDIS_URL="redis://127.0.0.1:1/0",
        )
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                _GUARD,
                "--temp-directory",
                # mktemp() is relative to trial's directory, not to cwd=ROOT
                os.path.join(os.path.abspath(self.mktemp()), "_trial_temp"),
                "examples.test_example_tasks",
                "examples.test_example_subscriber",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("Ran 7 tests", out)
        self.assertIn("PASSED", out)
        self.assertNotIn("no network allowed", out)

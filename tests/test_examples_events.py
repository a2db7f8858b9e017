# -*- test-case-name: tests.test_examples_events -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Run C{examples/event_drive.py} (the seed's event_drive program on the
registry) as a subprocess and check what it prints.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class EventDriveExampleTests(SynchronousTestCase):
    """
    C{examples/event_drive.py}.
    """

    def test_output(self) -> None:
        """
        The example prints the seed's two lines, in registration order, and
        exits 0.
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.run(
            [sys.executable, os.path.join("examples", "event_drive.py")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(
            proc.stdout.splitlines(),
            ["event-drive execute MyHandler", "event-drive ezecute YourHandler"],
        )

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the public surface of L{txmsg.amqp}.
"""

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import txmsg.amqp


class ExportsTests(SynchronousTestCase):
    """Tests for L{txmsg.amqp.__all__} and import side effects."""

    def test_all_names_exist(self):
        """Every name in __all__ is importable from txmsg.amqp."""
        for name in txmsg.amqp.__all__:
            self.assertTrue(hasattr(txmsg.amqp, name), name)

    def test_import_installs_no_reactor(self):
        """Importing txmsg.amqp imports neither pika's Twisted adapter nor the global reactor."""
        code = (
            "import sys, txmsg.amqp; "
            "print('pika.adapters.twisted_connection' in sys.modules, "
            "'twisted.internet.reactor' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": ":".join(sys.path)},
        ).stdout
        self.assertEqual(out.split(), ["False", "False"])

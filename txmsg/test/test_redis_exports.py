# -*- test-case-name: txmsg.test.test_redis_exports -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the public surface of L{txmsg.redis}.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import txmsg.redis


class ExportsTests(SynchronousTestCase):
    """
    Tests for C{txmsg.redis.__all__}.
    """

    def test_all_names_exist(self) -> None:
        """
        Every name in C{__all__} is importable from the package.
        """
        for name in txmsg.redis.__all__:
            self.assertTrue(hasattr(txmsg.redis, name), name)

    def test_no_reactor_on_import(self) -> None:
        """
        Importing C{txmsg.redis} imports neither txredisapi nor the global
        reactor (so twistd's --reactor keeps working).
        """
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, txmsg.redis, txmsg.redis.control_cli; "
                "print('txredisapi' in sys.modules, "
                "'twisted.internet.reactor' in sys.modules)",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": ":".join(p for p in sys.path if p)},
        )
        self.assertEqual(out.stdout.strip(), "False False")

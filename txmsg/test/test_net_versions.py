# -*- test-case-name: txmsg.test.test_net_versions -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.net._versions}: the Twisted releases txmsg's fast paths
were tested on.
"""

from __future__ import annotations

import twisted
from incremental import Version
from twisted.trial.unittest import SynchronousTestCase

from txmsg.net import _versions
from txmsg.net._versions import TESTED, tested_range_text, tested_twisted, twisted_version


class TestedTwistedTests(SynchronousTestCase):
    """
    Tests for L{tested_twisted} and its helpers.
    """

    def test_running_twisted_is_tested(self) -> None:
        """
        The Twisted this suite runs on lies in L{TESTED}.  When this fails
        after a Twisted upgrade, the fast paths have switched themselves off:
        run the whole suite on that release (the internals tests of
        C{test_writethrough} and C{test_epollreactor} say what changed), fix
        what they report, then move the upper end of L{TESTED}.
        """
        self.assertTrue(
            tested_twisted(),
            "Twisted {} is outside the tested range {}".format(
                twisted_version(), tested_range_text()
            ),
        )

    def test_range_ends_included(self) -> None:
        """
        Both ends of the range count as tested, any micro release of them
        too; the releases just outside do not.
        """
        (old_major, old_minor), (new_major, new_minor) = TESTED
        self.assertTrue(tested_twisted(Version("Twisted", old_major, old_minor, 0)))
        self.assertTrue(tested_twisted(Version("Twisted", new_major, new_minor, 3)))
        self.assertFalse(tested_twisted(Version("Twisted", old_major, old_minor - 1, 0)))
        self.assertFalse(tested_twisted(Version("Twisted", new_major, new_minor + 1, 0)))
        self.assertFalse(tested_twisted(Version("Twisted", new_major + 1, 0, 0)))

    def test_default_is_running_version(self) -> None:
        """
        Without an argument, the running C{twisted.version} is checked.
        """
        self.patch(twisted, "version", Version("Twisted", 99, 1, 0))
        self.assertFalse(tested_twisted())
        self.patch(_versions, "TESTED", ((99, 1), (99, 1)))
        self.assertTrue(tested_twisted())

    def test_texts(self) -> None:
        """
        The range and the running version read as dotted numbers.
        """
        self.patch(_versions, "TESTED", ((23, 10), (26, 10)))
        self.assertEqual(tested_range_text(), "23.10 to 26.10")
        self.assertEqual(twisted_version(), twisted.__version__)

# -*- test-case-name: txmsg.test.test_dashboard_history -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.ops.dashboard._history}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txmsg.ops.dashboard import QueueHistory, QueueSample


class QueueHistoryTests(SynchronousTestCase):
    """
    The ring buffer, its rates and its views.
    """

    def test_ring(self) -> None:
        """
        Only the last C{size} samples are kept; a sample older than the
        newest is ignored.
        """
        h = QueueHistory("q", size=3)
        for t in range(5):
            h.add(QueueSample(float(t), ready=t))
        h.add(QueueSample(1.0, ready=99))
        self.assertEqual([s.ready for s in h], [2, 3, 4])
        self.assertEqual(len(h), 3)

    def test_net_rate(self) -> None:
        """
        The depth's change per second over the window: negative while
        draining; unknown with fewer than two samples.
        """
        h = QueueHistory("q")
        self.assertIsNone(h.net_rate())
        h.add(QueueSample(0.0, ready=100, unacked=10))
        self.assertIsNone(h.net_rate())
        h.add(QueueSample(30.0, ready=70, unacked=10))
        h.add(QueueSample(60.0, ready=40, unacked=10))
        h.add(QueueSample(90.0, ready=10, unacked=10))
        self.assertEqual(h.net_rate(window=60.0), -1.0)
        h.add(QueueSample(95.0, ready=None))
        self.assertIsNone(h.net_rate())

    def test_views(self) -> None:
        """
        Points and the summary carry the depth; an empty history summarises
        as unknowns.
        """
        h = QueueHistory("q")
        self.assertEqual(h.summary()["ready"], None)
        h.add(QueueSample(1.0, ready=3, unacked=2, consumers=1, dead=4))
        h.add(QueueSample(2.0, ready=5))
        self.assertEqual([p["depth"] for p in h.points()], [5, 5])
        self.assertEqual([p["time"] for p in h.points(since=1.0)], [2.0])
        summary = h.summary()
        self.assertEqual((summary["queue"], summary["ready"], summary["depth"]), ("q", 5, 5))

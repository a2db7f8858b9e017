# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.brokers.transaction_choice}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txmsg.worker.brokers.transaction_choice import TransactionChoice


def feed(choice: TransactionChoice, pattern: list[bool]) -> list[bool]:
    """The moves C{choice} asks for while observing C{pattern}."""
    moves = []
    for queue_reply in pattern:
        move = choice.observe(queue_reply)
        if move is not None:
            moves.append(move)
    return moves


class TransactionChoiceTests(SynchronousTestCase):
    """
    Moves at the end of a window, with a dead band between the thresholds.
    """

    def test_decides_per_window(self) -> None:
        """
        Nothing is decided before a window is complete; a window of queue
        replies makes it transactional, one without makes it plain again.
        """
        choice = TransactionChoice(window=10)
        self.assertEqual(feed(choice, [True] * 9), [])
        self.assertEqual(feed(choice, [True]), [True])
        self.assertTrue(choice.transactional)
        self.assertEqual(choice.share, 1.0)
        self.assertEqual(feed(choice, [True] * 10), [])  # no move to the same mode
        self.assertEqual(feed(choice, [False] * 10), [False])
        self.assertFalse(choice.transactional)

    def test_thresholds(self) -> None:
        """
        Half the window or more moves to transactions; a tenth or less moves
        back; between the two, the mode stays.
        """
        choice = TransactionChoice(window=10)
        self.assertEqual(feed(choice, [True] * 4 + [False] * 6), [])
        self.assertEqual(feed(choice, [True] * 5 + [False] * 5), [True])
        self.assertEqual(feed(choice, [True] * 2 + [False] * 8), [])
        self.assertEqual(feed(choice, [True] * 1 + [False] * 9), [False])

    def test_alternating_mix_stays(self) -> None:
        """
        A mix that stays in the dead band never moves, however long.
        """
        choice = TransactionChoice(window=10, transactional=True)
        self.assertEqual(feed(choice, [True, False, False, False] * 100), [])
        self.assertTrue(choice.transactional)

    def test_bad_settings(self) -> None:
        """
        A window below 1, or thresholds out of order, are refused.
        """
        self.assertRaises(ValueError, TransactionChoice, window=0)
        self.assertRaises(ValueError, TransactionChoice, on=0.1, off=0.5)
        self.assertRaises(ValueError, TransactionChoice, on=1.5)

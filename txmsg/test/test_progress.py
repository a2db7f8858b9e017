# -*- test-case-name: txmsg.test.test_progress -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg._progress}.
"""

from __future__ import annotations

import io

from twisted.trial.unittest import SynchronousTestCase

from txmsg._progress import Progress, progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ProgressTests(SynchronousTestCase):
    """
    A bar on a terminal, periodic lines elsewhere.
    """

    def test_plain_lines(self) -> None:
        """
        Off a terminal, a line every C{interval} seconds and a last one,
        with rate, ETA and failures.
        """
        now = [0.0]
        out = io.StringIO()
        with progress(10, "sent", stream=out, interval=5.0, now=lambda: now[0]) as bar:
            now[0] = 1.0
            bar.advance()
            self.assertEqual(out.getvalue(), "")
            now[0] = 5.0
            bar.advance(failed=True)
            now[0] = 8.0
            bar.advance(2)
        self.assertEqual(
            out.getvalue().splitlines(),
            ["sent 2/10 (0.4/s, ETA 0:20), 1 failed", "sent 4/10 (0.5/s, ETA 0:12), 1 failed"],
        )

    def test_bar_on_a_terminal(self) -> None:
        """
        On a terminal, rich draws a bar with the count and rate.
        """
        out = FakeTerminal()
        now = [0.0]
        with progress(4, "requeued", stream=out, now=lambda: now[0]) as bar:
            for _ in range(4):
                now[0] += 1
                bar.advance()
        text = out.getvalue()
        self.assertIn("requeued", text)
        self.assertIn("4/4", text)
        self.assertIn("1.0/s", text)

    def test_single_step_is_silent(self) -> None:
        """
        One step shows nothing, on a terminal or not.
        """
        for out in (io.StringIO(), FakeTerminal()):
            with progress(1, "sent", stream=out) as bar:
                bar.advance()
            self.assertEqual(out.getvalue(), "")

    def test_line_without_rate(self) -> None:
        """
        Before anything is done, the ETA is unknown.
        """
        bar = Progress(3, "done", stream=io.StringIO(), now=lambda: 0.0)
        self.assertEqual(bar.line(), "done 0/3 (0.0/s, ETA ?)")

# -*- test-case-name: txmsg.test.test_echo_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Command-line options that may follow the positional arguments.
"""

from __future__ import annotations

import getopt
import sys
from collections.abc import Sequence

from twisted.python import usage

__all__ = ["GnuOptions"]


class GnuOptions(usage.Options):
    """
    L{usage.Options} that, like most command-line tools, also accepts options
    after positional arguments (C{txmsg send add 1 2 --wait}).  A C{--} ends
    the options: C{txmsg send add -- -1} passes C{-1} as an argument.
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Move every option before the positional arguments, then parse as usual.
        """
        if options is None:
            options = sys.argv[1:]
        try:
            opts, args = getopt.gnu_getopt(list(options), self.shortOpt, self.longOpt)
        except getopt.error as e:
            raise usage.UsageError(str(e))
        ordered: list[str] = []
        for name, value in opts:
            if name.startswith("--"):
                ordered.append(name + "=" + value if name[2:] + "=" in self.longOpt else name)
            elif name[1] + ":" in self.shortOpt:
                ordered.extend([name, value])
            else:
                ordered.append(name)
        super().parseOptions(ordered + ["--"] + args)

# -*- test-case-name: txmsg.test.test_options -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
What every txmsg command line shares: options that may follow the
positional arguments, and usage errors reported as one line.
"""

from __future__ import annotations

import getopt
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from twisted.application.app import ServerOptions
from twisted.python import usage

from txmsg import __version__

__all__ = [
    "GnuOptions",
    "TwistdPluginOptions",
    "load_user_object",
    "modules_from_cwd",
    "usage_error_line",
]

T = TypeVar("T")

# usage.Options puts this before a coercer's message; the coercers of
# txmsg._coerce name the option themselves, so it is only noise.
_COERCE_PREFIX = "Parameter type enforcement failed: "


def usage_error_line(command: str, error: Exception) -> str:
    """
    The one line printed for a usage error: what is wrong first, then where
    the options are described.

    @param command: the command as typed (C{"txmsg send"},
        C{"twistd txmsg-echo"}).
    @param error: the L{usage.UsageError}.
    """
    message = " ".join(str(error).split())
    if message.startswith(_COERCE_PREFIX):
        message = message[len(_COERCE_PREFIX) :]
    return "{}: error: {}; see '{} --help'".format(command, message.rstrip("."), command)


class _TxmsgVersion(usage.Options):
    """
    C{--version} prints txmsg's version, not Twisted's.
    """

    def opt_version(self) -> NoReturn:
        """
        Print txmsg's version and exit.
        """
        print("txmsg", __version__)
        sys.exit(0)


class TwistdPluginOptions(_TxmsgVersion):
    """
    Options of a twistd plugin whose usage errors are one line.

    twistd answers a usage error by printing its whole help text and then
    the error, last; it does so in C{twisted.application.app.run}, which a
    plugin cannot change.  So when these options are parsed as a twistd
    subcommand, a usage error is printed here, as one line on standard
    error, and the process exits with status 2 before twistd sees it.
    Parsed any other way (tests, a C{.tac} file), the L{usage.UsageError}
    is raised as usual.
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse; under twistd, report a usage error in one line and exit 2.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            parent = getattr(self, "parent", None)
            if not isinstance(parent, ServerOptions):
                raise
            command = "twistd {}".format(parent.subCommand)
            print(usage_error_line(command, e), file=sys.stderr)
            raise SystemExit(2) from None


class GnuOptions(_TxmsgVersion):
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


def modules_from_cwd() -> None:
    """Let user modules be found in the current directory, as C{python -m} does."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def load_user_object(loader: Callable[[str], T], spec: str | None, option: str) -> T:
    """
    Load the user's module object named by option C{option} (a task
    catalog, a schedule) with C{loader}, finding modules in the current
    directory first, as C{python -m} does.

    @raise usage.UsageError: when the option is missing or the object
        cannot be loaded (the loader's one-line reason).
    """
    if spec is None:
        raise usage.UsageError("{} MODULE is required".format(option))
    modules_from_cwd()
    try:
        return loader(spec)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None

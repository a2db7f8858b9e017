# -*- test-case-name: txmsg.test.test_echo_cli,txmsg.test.test_worker_cli -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The C{txmsg} console command: the client side of txmsg's services.

Each subcommand lives in its own module, imported only when used, which
provides C{Options} (a L{twisted.python.usage.Options}) and
C{run(reactor, options) -> Deferred[int]} (the exit status).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import react
from twisted.python import usage

from txmsg import __version__
from txmsg._options import usage_error_line

__all__ = ["SUBCOMMANDS", "Options", "main"]

#: (name, module, one-line description) of every subcommand.
SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("echo", "txmsg.echo_cli", "Send messages to an echo server and print what comes back."),
    ("control", "txmsg.redis.control_cli", "Send a control command to a worker over Redis."),
    ("send", "txmsg.worker.send_cli", "Submit a task (and wait for its result)."),
    ("workers", "txmsg.worker.workers_cli", "List the running workers."),
    ("dead-letters", "txmsg.worker.dead_letters_cli", "Inspect, requeue or purge dead letters."),
    ("schedule", "txmsg.schedule.schedule_cli", "List a schedule's entries or fire one now."),
    ("info", "txmsg.ops.info_cli", "Queues and workers in a table (--interval S refreshes it)."),
    ("result", "txmsg.worker.result_cli", "Show a task's status and result (or wait for it)."),
    (
        "revoke",
        "txmsg.worker.revoke_cli",
        "Revoke tasks: queued ones are not run, running ones cancelled.",
    ),
]


def _lazy(module: str) -> Callable[[], usage.Options]:
    def build() -> usage.Options:
        return importlib.import_module(module).Options()

    return build


class Options(usage.Options):
    """
    Top-level options of C{txmsg}.
    """

    synopsis = "txmsg COMMAND [options] [arguments]"
    longdesc = "Run 'txmsg COMMAND --help' for the options of one command."
    subCommands = [[name, None, _lazy(module), doc] for name, module, doc in SUBCOMMANDS]

    def getSynopsis(self) -> str:
        """
        C{Usage: txmsg COMMAND ...}, or C{Usage: txmsg} as the prefix of a
        subcommand's own synopsis.
        """
        if self.subCommand is None:
            return "Usage: " + self.synopsis
        return "Usage: txmsg"

    def opt_version(self) -> NoReturn:
        """
        Print the version and exit.
        """
        print("txmsg", __version__)
        sys.exit(0)

    def postOptions(self) -> None:
        """
        Insist on a subcommand.
        """
        if self.subCommand is None:
            raise usage.UsageError("a command is required")


def _module_of(name: str | None) -> Any:
    for sub, module, _ in SUBCOMMANDS:
        if sub == name:
            return importlib.import_module(module)
    raise KeyError(name)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    Parse C{argv} (default: C{sys.argv[1:]}), run the subcommand on the
    reactor and exit with its status: 0 on success, 1 on failure, 2 on a
    usage error.
    """
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        command = " ".join(["txmsg"] + ([options.subCommand] if options.subCommand else []))
        print(usage_error_line(command, e), file=sys.stderr)
        sys.exit(2)
    module = _module_of(options.subCommand)

    def run(reactor: IReactorTime) -> Any:
        def exit_with(status: int) -> None:
            if status:
                raise SystemExit(status)

        return module.run(reactor, options.subOptions).addCallback(exit_with)

    react(run)
    raise AssertionError("react() returned")  # pragma: no cover

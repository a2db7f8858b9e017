# -*- test-case-name: txmsg.test.test_tap_listen_failure -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A server that cannot listen says why in one line and exits non-zero.

    def privilegedStartService(self):
        with exit_if_cannot_listen(self.log):
            super().privilegedStartService()

twistd starts the application's services (C{privilegedStartService}) after
it set up logging and before it runs the reactor; an exception raised there
ends twistd with a traceback of some 40 lines, the cause on the last one.
L{exit_if_cannot_listen} turns the errors a listening port raises (address
in use, no such directory for a UNIX socket, permission denied) into one
logged line and L{CannotStart}, which twistd treats as an ordinary error
(it removes its pidfile and, when daemonizing, reports the message to the
parent process) and Python then treats as C{SystemExit(1)}: no traceback.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from twisted.internet.error import CannotListenError
from twisted.logger import Logger

__all__ = ["CannotStart", "describe_listen_error", "exit_if_cannot_listen", "exit_status_at_end"]


class CannotStart(SystemExit, Exception):
    """
    The server cannot start; the message says why.

    An L{Exception}, so that twistd's start-up code cleans up as for any
    failure, and a L{SystemExit} with status 1, so that the interpreter
    exits without printing a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


_ADVICE = {
    errno.EADDRINUSE: "the address is already in use; stop what listens there "
    "or choose another --listen port",
    errno.EACCES: "permission denied; choose a port above 1023, or a path you may write to",
    errno.EADDRNOTAVAIL: "no such address on this host; check interface=",
    errno.ENOENT: "the directory does not exist; create it or choose another path",
    errno.ENOTDIR: "a part of the path is not a directory; choose another path",
}


def _where(error: BaseException) -> str:
    if isinstance(error, CannotListenError):
        port = (
            error.port.decode("utf-8", "replace") if isinstance(error.port, bytes) else error.port
        )
        if error.interface:
            host = "[{}]".format(error.interface) if ":" in error.interface else error.interface
            return "{}:{}".format(host, port)
        return str(port)
    # UNIX ports lock "PATH.lock" (a symlink) before they bind; a missing
    # directory fails there, with the lock's path as the second file name.
    name = getattr(error, "filename2", None) or getattr(error, "filename", None)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if isinstance(name, str):
        return name[: -len(".lock")] if name.endswith(".lock") else name
    return "the requested address"


def describe_listen_error(error: BaseException) -> str | None:
    """
    One line saying why a listening port could not be opened, and what to
    do about it.

    @param error: what C{listen} raised.
    @return: the line, or L{None} when C{error} is not a failure to listen.
    """
    cause = error.socketError if isinstance(error, CannotListenError) else error
    if not isinstance(cause, OSError) and not isinstance(error, CannotListenError):
        return None
    code = getattr(cause, "errno", None)
    advice = _ADVICE.get(code) if code is not None else None
    if advice is None:
        advice = getattr(cause, "strerror", None) or str(cause)
    return "cannot listen on {}: {}".format(_where(error), advice)


@contextmanager
def exit_if_cannot_listen(log: Logger) -> Iterator[None]:
    """
    Run the body (which starts listening); if a port cannot be opened, log
    one critical line and raise L{CannotStart} with it.

    @param log: the logger of the service that listens.
    """
    try:
        yield
    except (CannotListenError, OSError) as e:
        message = describe_listen_error(e)
        if message is None:  # pragma: no cover - both kinds are described
            raise
        log.critical("{reason}", reason=message)
        raise CannotStart(message) from None


def exit_status_at_end(status: int) -> None:
    """
    Make the process exit with C{status} once twistd is done (reactor
    stopped, pidfile removed): twistd itself always exits 0 after a normal
    reactor stop, and offers no way to report a failure found later.

    @param status: the exit status.
    """

    def exit_now() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # pragma: no cover - a closed stream
                pass
        os._exit(status)

    atexit.register(exit_now)

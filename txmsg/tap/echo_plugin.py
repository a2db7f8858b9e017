# -*- test-case-name: txmsg.test.test_tap_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The C{twistd txmsg-echo} entry point: L{txmsg.tap.echo}'s service on txmsg's
lean epoll reactor, unless twistd was told which reactor to use.

Kept apart from L{txmsg.tap.echo} so that programs building the echo service
themselves (a C{.tac} file, an embedding application) never get a reactor
installed behind their back.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from txmsg._reactor import maybe_global_reactor
from txmsg.net import epollreactor
from txmsg.tap.echo import EchoService, Options
from txmsg.tap.echo import makeService as make_echo_service

__all__ = ["Options", "makeService"]

_log = Logger()


def makeService(options: Options) -> EchoService:
    """
    Install L{txmsg.net.epollreactor} when no reactor was chosen (C{twistd -r}),
    then build the echo service on the reactor in use.

    @param options: parsed L{Options}.
    """
    lean = epollreactor.install_unless_chosen()
    reactor = maybe_global_reactor(None)

    _log.info(
        "txmsg-echo reactor: {name}{note}",
        name=_qualified_name(reactor),
        note=" (txmsg's lean epoll loop; twistd -r epoll for Twisted's stock one)" if lean else "",
    )
    return make_echo_service(options, reactor)


def _qualified_name(obj: Any) -> str:
    cls = type(obj)
    return "{}.{}".format(cls.__module__, cls.__qualname__)

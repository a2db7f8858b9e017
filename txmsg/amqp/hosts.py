# -*- test-case-name: txmsg.test.test_amqp_hosts -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Several brokers for one connection: the nodes of a RabbitMQ cluster.

C{parse_amqp_urls("amqp://u:p@node1:5672/%2F,amqp://u:p@node2:5672/%2F")}
reads a list of AMQP URLs separated by commas, semicolons or spaces (a
separator counts only right before a scheme such as C{amqp://}, so pika's
C{ssl_options={...}} query values keep their commas, and a stray
C{http://...} is named as a bad URL rather than read as part of a vhost).

L{HostList} keeps the list and which node is in use; its L{endpoint} is one
Twisted client endpoint that, on each C{connect}, tries the current node
first and the next ones in turn when the TCP (or TLS) connection fails.
L{txmsg.amqp.connection.AMQPConnection} moves to the next node
(L{HostList.advance}) when a node accepted TCP but its AMQP set-up failed
(a node still booting or shutting down), and L{ClientService}'s backoff
applies between whole rounds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocolFactory,
    IReactorTCP,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from txmsg.amqp.url import AMQPAddress, amqp_url, parse_amqp_url

__all__ = ["HostList", "parse_amqp_urls", "split_amqp_urls"]

_SEPARATOR = re.compile(r"[\s,;]+(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def split_amqp_urls(text: str) -> list[str]:
    """
    Split a list of AMQP URLs (pure: no validation).

    @param text: URLs separated by commas, semicolons or white space.
    @return: the non-empty URLs, in order.
    """
    return [part.strip(" ,;\t\n") for part in _SEPARATOR.split(text.strip()) if part.strip(" ,;")]


def parse_amqp_urls(url: str | None = None) -> tuple[AMQPAddress, ...]:
    """
    Parse one AMQP URL or a list of them (see the module docstring).

    @param url: the URL(s); L{None} means L{amqp_url}'s default.
    @raise ValueError: if one URL is invalid (the message names it, with its
        password redacted) or if the list is empty.
    """
    urls = split_amqp_urls(amqp_url(url))
    if not urls:
        raise ValueError("no AMQP URL given")
    return tuple(parse_amqp_url(u) for u in urls)


class HostList:
    """
    The brokers of one connection and the one in use.

    @ivar addresses: the parsed URLs.
    @ivar index: the position of the node tried first next time.
    """

    def __init__(
        self,
        addresses: Sequence[AMQPAddress],
        *,
        shuffle: bool = False,
        rng: Callable[[list[AMQPAddress]], None] | None = None,
    ) -> None:
        """
        @param addresses: at least one address.
        @param shuffle: start at a random node and try the others in a
            random order (spreads many clients over a cluster); the default
            is the order given.
        @param rng: the shuffling function (default C{random.shuffle}).
        """
        if not addresses:
            raise ValueError("no AMQP URL given")
        self.addresses = list(addresses)
        if shuffle:
            (rng or random.shuffle)(self.addresses)
        self.index = 0

    @property
    def current(self) -> AMQPAddress:
        """The node in use (or tried next)."""
        return self.addresses[self.index]

    def advance(self) -> AMQPAddress:
        """Move to the next node (round robin); return it."""
        self.index = (self.index + 1) % len(self.addresses)
        return self.current

    def __len__(self) -> int:
        return len(self.addresses)

    def endpoint(
        self, reactor: IReactorTCP, tls_creator: IOpenSSLClientConnectionCreator | None = None
    ) -> IStreamClientEndpoint:
        """
        One client endpoint over every node (see the module docstring).

        @param reactor: the reactor to connect with.
        @param tls_creator: for C{amqps}, the TLS connection creator used
            for every node (default: each URL's own).
        """
        if len(self.addresses) == 1:
            return self.current.endpoint(reactor, tls_creator)
        return _FailoverEndpoint(self, lambda a: a.endpoint(reactor, tls_creator))


@implementer(IStreamClientEndpoint)
class _FailoverEndpoint:
    """
    Connect to the current node of a L{HostList}, else to the next ones;
    fail with the last node's error when none accepts.
    """

    def __init__(
        self, hosts: HostList, make: Callable[[AMQPAddress], IStreamClientEndpoint]
    ) -> None:
        self._hosts = hosts
        self._make = make

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        """Try each node once, starting with the current one."""
        pending: list[Deferred] = []
        remaining = [len(self._hosts)]
        cancelled: list[bool] = []

        def cancel(_: Deferred) -> None:
            cancelled.append(True)
            pending[0].cancel()

        result: Deferred = Deferred(cancel)

        def attempt() -> None:
            d = self._make(self._hosts.current).connect(protocolFactory)
            pending[:] = [d]
            d.addCallbacks(result.callback, failed)

        def failed(f: Failure) -> None:
            remaining[0] -= 1
            if cancelled or result.called:
                return
            if remaining[0] <= 0:
                result.errback(f)
                return
            self._hosts.advance()
            attempt()

        attempt()
        return result

# -*- test-case-name: txmsg.test.test_net_listen -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.net.listen}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txmsg.net.listen import AnnouncingEndpoint, listening_service


class BusyReactor(MemoryReactor):
    """
    A memory reactor on which every TCP port is taken.
    """

    def listenTCP(self, port: int, *args: Any, **kwargs: Any) -> Any:
        raise CannotListenError("127.0.0.1", port, OSError(98, "Address already in use"))


class ListeningServiceTests(SynchronousTestCase):
    """
    Tests for L{listening_service}.
    """

    def test_announces_address(self) -> None:
        """
        Once the port listens, C{announce} gets its address, and the
        factory is the one given.
        """
        reactor = MemoryReactor()
        announced: list[Any] = []
        factory = Factory.forProtocol(Protocol)
        service = listening_service(
            reactor, "tcp:8123:interface=127.0.0.1", factory, announce=announced.append
        )
        service.privilegedStartService()
        self.assertEqual([address.port for address in announced], [8123])
        ((port, listened, _, interface),) = reactor.tcpServers
        self.assertEqual((port, interface), (8123, "127.0.0.1"))
        self.assertIs(listened, factory)

    def test_listen_failure_raises(self) -> None:
        """
        A port that cannot be bound makes the service's start-up raise (so
        that twistd exits with the error), as C{strports.service} does.
        """
        service = listening_service(BusyReactor(), "tcp:8123", Factory.forProtocol(Protocol))
        self.assertRaises(CannotListenError, service.privilegedStartService)

    def test_without_announce(self) -> None:
        """
        Without C{announce} the endpoint is the parsed one, unwrapped; on a
        reactor the write-through transport does not apply to, asking for
        it changes nothing.
        """
        reactor = MemoryReactor()
        service = listening_service(
            reactor, "tcp:8123", Factory.forProtocol(Protocol), write_through=True
        )
        self.assertNotIsInstance(service.endpoint, AnnouncingEndpoint)
        self.assertIs(service.endpoint._reactor, reactor)

    def test_announcing_endpoint_interface(self) -> None:
        """
        L{AnnouncingEndpoint} provides C{IStreamServerEndpoint}.
        """
        reactor = MemoryReactor()
        service = listening_service(
            reactor, "tcp:8123", Factory.forProtocol(Protocol), announce=lambda a: None
        )
        self.assertTrue(verifyObject(IStreamServerEndpoint, service.endpoint))

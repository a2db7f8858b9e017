# -*- test-case-name: txmsg.test.test_echo -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The UDP echo: L{EchoDatagramProtocol}.

Public names are re-exported by L{txmsg.echo}.
"""

from __future__ import annotations

import builtins
from typing import Any

from twisted.internet.interfaces import IUDPTransport
from twisted.internet.protocol import DatagramProtocol

__all__ = ["EchoDatagramProtocol"]


class EchoDatagramProtocol(DatagramProtocol):
    """
    Echo every UDP datagram back to its sender.

    @ivar datagrams: datagrams echoed.
    @ivar bytes: bytes echoed.
    """

    datagrams = 0
    bytes = 0

    transport: IUDPTransport

    def datagramReceived(self, datagram: builtins.bytes, addr: Any) -> None:
        """
        Send C{datagram} back to C{addr}.
        """
        self.datagrams += 1
        self.bytes += len(datagram)
        self.transport.write(datagram, addr)

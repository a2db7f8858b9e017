# -*- test-case-name: txmsg.test.test_amqp_delayed,txmsg.test.test_contract_amqp -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Exchange-to-exchange bindings on the in-memory broker's channels
(C{exchange_bind}, C{exchange_unbind}), as pika's C{TwistedChannel} has them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from txmsg.testing._amqp_queue import _Frame

__all__ = ["ExchangeBindings"]


class ExchangeBindings:
    """
    Mixed into L{txmsg.testing._amqp_channel.MemoryChannel}: it provides
    C{_run} and C{_broker}.
    """

    _broker: Any
    _run: Any

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: dict | None = None,
    ) -> Deferred:
        """Bind exchange C{destination} to exchange C{source}."""
        return self._run(
            lambda: _Frame(self._broker.bind_exchange(destination, source, routing_key, arguments))
        )

    def exchange_unbind(
        self,
        destination: str | None = None,
        source: str | None = None,
        routing_key: str = "",
        arguments: dict | None = None,
    ) -> Deferred:
        """Remove an exchange-to-exchange binding."""
        return self._run(
            lambda: _Frame(
                self._broker.unbind_exchange(
                    destination or "", source or "", routing_key, arguments
                )
            )
        )

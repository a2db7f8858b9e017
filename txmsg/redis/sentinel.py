# -*- test-case-name: txmsg.test.test_redis_sentinel -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Redis with Sentinel: a client endpoint that finds the master first.

A C{redis+sentinel://} URL (see L{txmsg.redis.url}) names the Sentinels and
the monitored master's name.  L{SentinelEndpoint} is the Twisted client
endpoint every Redis connection of txmsg is made through (commands, pub/sub,
and whatever is built on them), so each (re)connection:

  1. asks the Sentinels in turn C{SENTINEL get-master-addr-by-name <name>}
     (the one that answered is asked first next time);
  2. connects to that address and checks with C{ROLE} that it is a master
     (right after a failover a Sentinel may still name the old one);
  3. connects the real client there; txredisapi then authenticates,
     selects the database and, for pub/sub, txmsg re-subscribes.

A failover reaches the clients as a lost connection: the old master is
gone, or, when it is still alive, Sentinel demotes it with C{REPLICAOF}
and C{CLIENT KILL TYPE normal/pubsub}, which closes every client
connection (only when it next reconfigures it, about 10 s after the
switch: until then the connections stay on the old master; see
docs/scaling.md).  txredisapi's own reconnection then comes back through this
endpoint and finds the new master.  When no Sentinel knows a master (or
the one named is not a master yet) the attempt fails like a refused
connection, and txredisapi retries with its backoff.

txredisapi ships a C{Sentinel} class; txmsg does not use it because it
asks for its own factory and protocol classes (ours add state reporting
and the MULTI fix), connects to the master without TLS, and schedules on
the global reactor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint, ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txmsg._tls import client_tls_options
from txmsg.net.transport import client_reactor
from txmsg.redis._resp import Incomplete, ReplyError, RESPError, encode_command, parse_reply

__all__ = ["SentinelEndpoint", "SentinelMasterNotFound"]


class SentinelMasterNotFound(ConnectError):
    """
    No Sentinel named a reachable master (or the server named is not a
    master yet); the connection attempt failed and will be retried.
    """


class _Query(Protocol):
    """Send some commands, collect as many replies, then hang up."""

    def __init__(self, commands: Sequence[Sequence[str | bytes | int]]) -> None:
        self.commands = commands
        self.replies: list[Any] = []
        self.done: Deferred[list[Any]] = Deferred(lambda _: self._abort())
        self._buffer = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(encode_command(*c) for c in self.commands))

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        try:
            while len(self.replies) < len(self.commands):
                value, self._buffer = parse_reply(self._buffer)
                self.replies.append(value)
        except Incomplete:
            return
        except RESPError as e:
            self._finish(Failure(SentinelMasterNotFound(f"not a Redis reply: {e}")))
            return
        self._finish(self.replies)

    def _abort(self) -> None:
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._finish(Failure(SentinelMasterNotFound("connection closed before the reply")))

    def _finish(self, result: Any) -> None:
        if not self.done.called:
            self.done.callback(result) if isinstance(result, list) else self.done.errback(result)
            if self.transport is not None:
                self.transport.loseConnection()


@implementer(IStreamClientEndpoint)
class SentinelEndpoint:
    """
    Connect to the master that the Sentinels name (see the module
    docstring).

    @ivar sentinels: C{(host, port)} of each Sentinel, the last one that
        answered first.
    @ivar master: C{(host, port)} of the master last connected to, or
        L{None}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        sentinels: Sequence[tuple[str, int]],
        service: str,
        *,
        username: str | None = None,
        password: str | None = None,
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        tls: bool = False,
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """
        @param reactor: the reactor to connect and time out with.
        @param sentinels: at least one C{(host, port)}.
        @param service: the master's name in the Sentinels' configuration.
        @param username: ACL user of the master (for the C{ROLE} check).
        @param password: password of the master.
        @param sentinel_username: ACL user of the Sentinels.
        @param sentinel_password: password of the Sentinels (C{requirepass}
            in their configuration), if any.
        @param tls: TLS to the Sentinels and to the master.
        @param ca_certs: PEM file of trusted CAs for TLS.
        @param certfile: client certificate for TLS.
        @param keyfile: its key.
        @param timeout: seconds for each connect and each question.
        """
        if not sentinels:
            raise ValueError("a Sentinel URL needs at least one Sentinel")
        self.reactor = reactor
        self.sentinels = list(sentinels)
        self.service = service
        self.master: tuple[str, int] | None = None
        self._auth = _auth(username, password)
        self._sentinel_auth = _auth(sentinel_username, sentinel_password)
        self._tls = (tls, ca_certs, certfile, keyfile)
        self._timeout = timeout
        self._last_failure: str | None = None

    def _endpoint(self, host: str, port: int) -> IStreamClientEndpoint:
        tls, ca_certs, certfile, keyfile = self._tls
        inner: IStreamClientEndpoint = endpoints.HostnameEndpoint(
            client_reactor(self.reactor), host, port, timeout=self._timeout
        )
        if not tls:
            return inner
        return endpoints.wrapClientTLS(client_tls_options(host, ca_certs, certfile, keyfile), inner)

    async def _ask(self, host: str, port: int, commands: list) -> list[Any]:
        query = _Query(commands)
        factory = Factory.forProtocol(lambda: query)
        factory.noisy = False
        await self._endpoint(host, port).connect(factory)
        timer = self.reactor.callLater(self._timeout, query.done.cancel)
        try:
            return await query.done
        finally:
            if timer.active():
                timer.cancel()

    async def locate(self) -> tuple[str, int]:
        """
        Ask the Sentinels where the master is and check that it is one.

        @raise SentinelMasterNotFound: with every Sentinel's answer.
        """
        reasons = []
        for index, (host, port) in enumerate(list(self.sentinels)):
            question = ["SENTINEL", "get-master-addr-by-name", self.service]
            try:
                replies = await self._ask(host, port, [*self._sentinel_auth, question])
            except Exception as e:
                reasons.append(f"{host}:{port}: {_short(e)}")
                continue
            answer = replies[-1]
            error = next((r for r in replies if isinstance(r, ReplyError)), None)
            if error is not None or not _is_address(answer):
                why = error if error is not None else f"does not know master {self.service!r}"
                reasons.append(f"{host}:{port}: {why}")
                continue
            if index:  # remember who answered
                self.sentinels.insert(0, self.sentinels.pop(index))
            master = (answer[0].decode("ascii", "replace"), int(answer[1]))
            await self._check_master(*master)
            return master
        raise SentinelMasterNotFound(
            "no Sentinel named master {!r}: {}".format(self.service, "; ".join(reasons))
        )

    async def _check_master(self, host: str, port: int) -> None:
        try:
            replies = await self._ask(host, port, [*self._auth, ["ROLE"]])
        except Exception as e:
            raise SentinelMasterNotFound(
                f"master {self.service!r} at {host}:{port} unreachable: {_short(e)}"
            ) from None
        role = replies[-1]
        if not (isinstance(role, list) and role and role[0] == b"master"):
            raise SentinelMasterNotFound(
                f"{host}:{port}, named master {self.service!r}, is not a master (yet)"
            )

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        """Locate the master, then connect C{protocolFactory} to it."""
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, protocolFactory: IProtocolFactory) -> Any:
        try:
            master = await self.locate()
        except SentinelMasterNotFound as e:
            # retried with backoff by the caller: say why once, and again
            # only when the reason changes
            if str(e) != self._last_failure:
                self._last_failure = str(e)
                self.log.warn("Redis Sentinel: {reason}", reason=str(e))
            raise
        self._last_failure = None
        if master != self.master:
            self.log.info(
                "Redis Sentinel: master {service!r} is at {host}:{port}",
                service=self.service,
                host=master[0],
                port=master[1],
            )
            self.master = master
        return await self._endpoint(*master).connect(protocolFactory)


def _auth(username: str | None, password: str | None) -> list[list[str]]:
    if password is None:
        return []
    return [["AUTH", username, password] if username else ["AUTH", password]]


def _is_address(answer: Any) -> bool:
    return (
        isinstance(answer, list)
        and len(answer) == 2
        and all(isinstance(part, bytes) for part in answer)
        and answer[1].isdigit()
        and 0 < int(answer[1]) < 65536
    )


def _short(e: BaseException) -> str:
    return str(e) or type(e).__name__

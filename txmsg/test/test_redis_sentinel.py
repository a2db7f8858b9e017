# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.sentinel}, L{txmsg.redis._resp} and Sentinel URLs.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis._resp import (
    Incomplete,
    ReplyError,
    RESPError,
    encode_command,
    parse_reply,
)
from txmsg.redis.sentinel import SentinelEndpoint, SentinelMasterNotFound
from txmsg.redis.url import InvalidRedisURL, parse_redis_url
from txmsg.test._optional import fuzz

URL = "redis+sentinel://u:pw@127.0.0.1:26379,h2:26380,[::1]/mymaster/3?sentinel_password=spw"


class SentinelURLTests(SynchronousTestCase):
    """C{redis+sentinel://} URLs."""

    def test_parts(self) -> None:
        """Sentinels (default port 26379), master name, db and both passwords are read."""
        u = parse_redis_url(URL)
        self.assertEqual(u.sentinels, (("127.0.0.1", 26379), ("h2", 26380), ("::1", 26379)))
        self.assertEqual((u.service, u.db, u.username, u.password), ("mymaster", 3, "u", "pw"))
        self.assertEqual(u.sentinel_password, "spw")
        self.assertTrue(u.sentinel)
        self.assertFalse(u.tls)

    def test_redacted(self) -> None:
        """Neither password appears in the redacted URL or the repr."""
        u = parse_redis_url(URL)
        for text in (u.redacted(), repr(u), str(u)):
            self.assertNotIn("pw@", text)
            self.assertNotIn("spw", text)

    def test_tls(self) -> None:
        """C{rediss+sentinel} means TLS to the Sentinels and the master."""
        self.assertTrue(parse_redis_url("rediss+sentinel://h1/m").tls)

    def test_default_db(self) -> None:
        """Without a db number, db 0."""
        self.assertEqual(parse_redis_url("redis+sentinel://h1:1,h2:2/m").db, 0)

    def test_errors(self) -> None:
        """A missing master name, no Sentinel, a bad port: one line, no password."""
        for bad in (
            "redis+sentinel://:pw@h1:26379/",
            "redis+sentinel://:pw@/m",
            "redis+sentinel://:pw@h1:notaport/m",
            "redis+sentinel://:pw@h1:99999/m",
            "redis+sentinel://:pw@h1/m/x",
        ):
            e = self.assertRaises(InvalidRedisURL, parse_redis_url, bad)
            self.assertNotIn("pw", str(e).replace("***", ""))

    def test_endpoint(self) -> None:
        """The URL's endpoint is a L{SentinelEndpoint} with the Sentinels in order."""
        ep = parse_redis_url(URL).endpoint(MemoryReactorClock())
        assert isinstance(ep, SentinelEndpoint)
        self.assertEqual(ep.sentinels[0], ("127.0.0.1", 26379))
        self.assertEqual(ep.service, "mymaster")


class RESPTests(SynchronousTestCase):
    """The small RESP reader."""

    def test_encode(self) -> None:
        """Commands are arrays of bulk strings."""
        self.assertEqual(encode_command("ROLE"), b"*1\r\n$4\r\nROLE\r\n")

    def test_values(self) -> None:
        """Simple, bulk, integer, nil, array and error replies."""
        data = b"+OK\r\n:7\r\n$-1\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n-ERR no\r\nrest"
        values = []
        for _ in range(5):
            value, data = parse_reply(data)
            values.append(value)
        self.assertEqual(values[:4], [b"OK", 7, None, [b"127.0.0.1", b"6380"]])
        self.assertIsInstance(values[4], ReplyError)
        self.assertEqual(data, b"rest")

    def test_incomplete(self) -> None:
        """A partial reply asks for more bytes."""
        for part in (b"", b"*2\r\n$3\r\nab", b"$5\r\nabc", b":12"):
            self.assertRaises(Incomplete, parse_reply, part)

    def test_bad(self) -> None:
        """Unknown types, huge or negative lengths, deep nesting are refused."""
        for bad in (b"?x\r\n", b"$999999999\r\n", b"*-5\r\n", b"$x\r\n", b"*1\r\n" * 10):
            self.assertRaises(RESPError, parse_reply, bad)

    @fuzz(lambda st: st.binary(max_size=200))
    def test_fuzz(self, data: bytes) -> None:
        """Any bytes give a value, Incomplete or RESPError: nothing else."""
        try:
            parse_reply(data)
        except (Incomplete, RESPError):
            pass


class _Server:
    """A fake Redis/Sentinel answering with fixed bytes per command name."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self.seen: list[bytes] = []

    def connect(self, factory: Any) -> Deferred:
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        sent = transport.value()
        self.seen.append(sent)
        reply = b"".join(v for k, v in self.answers.items() if k in sent)
        if reply:
            proto.dataReceived(reply)
        return succeed(proto)


class _Endpoint(SentinelEndpoint):
    def __init__(self, servers: dict, **kw: Any) -> None:
        super().__init__(
            MemoryReactorClock(), [("s1", 1), ("s2", 2)], "mymaster", timeout=1.0, **kw
        )
        self.servers = servers

    def _endpoint(self, host: str, port: int) -> Any:
        server = self.servers.get((host, port))
        if server is None:
            return _Refusing()
        return server


class _Refusing:
    def connect(self, factory: Any) -> Deferred:
        return fail(ConnectionRefusedError())


ADDRESS = b"*2\r\n$1\r\nm\r\n$4\r\n6390\r\n"
MASTER_ROLE = b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
REPLICA_ROLE = b"*5\r\n$5\r\nslave\r\n$1\r\nx\r\n:1\r\n$9\r\nconnected\r\n:0\r\n"


class SentinelEndpointTests(SynchronousTestCase):
    """Finding the master."""

    def test_asks_next_sentinel(self) -> None:
        """A refusing Sentinel is skipped; the one that answered goes first."""
        master = _Server({b"ROLE": MASTER_ROLE})
        ep = _Endpoint({("s2", 2): _Server({b"get-master": ADDRESS}), ("m", 6390): master})
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(ep.locate())), ("m", 6390))
        self.assertEqual(ep.sentinels[0], ("s2", 2))

    def test_connects_factory_to_master(self) -> None:
        """C{connect} hands the real factory's protocol over, connected to the master."""
        master = _Server({b"ROLE": MASTER_ROLE})
        ep = _Endpoint({("s1", 1): _Server({b"get-master": ADDRESS}), ("m", 6390): master})

        proto = self.successResultOf(ep.connect(Factory.forProtocol(Protocol)))
        self.assertIsInstance(proto, Protocol)
        self.assertEqual(ep.master, ("m", 6390))
        self.assertEqual(len(master.seen), 2)  # the ROLE probe, then the client

    def test_replica_is_not_master(self) -> None:
        """A server named master that says it is a replica fails the attempt."""
        ep = _Endpoint(
            {
                ("s1", 1): _Server({b"get-master": ADDRESS}),
                ("m", 6390): _Server({b"ROLE": REPLICA_ROLE}),
            }
        )
        f = self.failureResultOf(Deferred.fromCoroutine(ep.locate()), SentinelMasterNotFound)
        self.assertIn("not a master", str(f.value))

    def test_unknown_master(self) -> None:
        """Sentinels that do not know the name: the reasons of each, in one error."""
        nil = _Server({b"get-master": b"*-1\r\n"})
        ep = _Endpoint({("s1", 1): nil, ("s2", 2): nil})
        f = self.failureResultOf(Deferred.fromCoroutine(ep.locate()), SentinelMasterNotFound)
        self.assertIn("s1:1", str(f.value))
        self.assertIn("s2:2", str(f.value))

    def test_passwords_sent(self) -> None:
        """The Sentinel gets the Sentinel password, the master the master's."""
        sentinel = _Server({b"get-master": b"+OK\r\n" + ADDRESS})
        master = _Server({b"ROLE": b"+OK\r\n" + MASTER_ROLE})
        ep = _Endpoint(
            {("s1", 1): sentinel, ("m", 6390): master},
            username="app",
            password="mpw",
            sentinel_password="spw",
        )
        self.successResultOf(Deferred.fromCoroutine(ep.locate()))
        self.assertIn(b"$3\r\nspw\r\n", sentinel.seen[0])
        self.assertIn(b"$3\r\napp\r\n$3\r\nmpw\r\n", master.seen[0])

    def test_wrong_sentinel_password(self) -> None:
        """An error reply from a Sentinel is named, never the password."""
        sentinel = _Server({b"get-master": b"-WRONGPASS invalid\r\n" + ADDRESS})
        ep = _Endpoint({("s1", 1): sentinel}, sentinel_password="spw")
        f = self.failureResultOf(Deferred.fromCoroutine(ep.locate()), SentinelMasterNotFound)
        self.assertIn("WRONGPASS", str(f.value))
        self.assertNotIn("spw", str(f.value))

    def test_silent_server_times_out(self) -> None:
        """A Sentinel that never answers is given up after the timeout."""
        ep = _Endpoint({("s1", 1): _Server({}), ("s2", 2): _Server({})})
        d = Deferred.fromCoroutine(ep.locate())
        self.assertNoResult(d)
        ep.reactor.advance(1.0)
        ep.reactor.advance(1.0)
        self.failureResultOf(d, SentinelMasterNotFound)


class SentinelLogTests(SynchronousTestCase):
    """Why the master cannot be found is logged once per reason."""

    def test_reason_logged_once(self) -> None:
        """Two failures for the same reason: one warning; a success resets it."""
        nil = _Server({b"get-master": b"*-1\r\n"})
        ep = _Endpoint({("s1", 1): nil, ("s2", 2): nil})
        events: list[dict] = []
        ep.log = Logger(observer=cast(ILogObserver, events.append))
        factory = Factory.forProtocol(Protocol)
        self.failureResultOf(ep.connect(factory), SentinelMasterNotFound)
        self.failureResultOf(ep.connect(factory), SentinelMasterNotFound)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("does not know master", warnings[0]["reason"])
        ep.servers = {
            ("s1", 1): _Server({b"get-master": ADDRESS}),
            ("m", 6390): _Server({b"ROLE": MASTER_ROLE}),
        }
        self.successResultOf(ep.connect(factory))
        ep.servers = {("s1", 1): nil, ("s2", 2): nil}
        self.failureResultOf(ep.connect(factory), SentinelMasterNotFound)
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 2)

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.amqp.hosts}: URL lists and the fail-over endpoint.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txmsg._coerce import check_amqp_url
from txmsg.amqp.connection import AMQPConnection
from txmsg.amqp.hosts import HostList, _FailoverEndpoint, parse_amqp_urls, split_amqp_urls

A = "amqp://u:secret@n1:5672/%2F"
B = "amqp://u:secret@n2:5673/%2F"
C = "amqps://u:secret@n3/%2F?ssl_options={'server_hostname':'x','certfile':None}"


class SplitTests(SynchronousTestCase):
    """L{split_amqp_urls} and L{parse_amqp_urls}."""

    def test_separators(self) -> None:
        """Commas, semicolons and white space separate URLs."""
        self.assertEqual(split_amqp_urls(f"{A},{B}"), [A, B])
        self.assertEqual(split_amqp_urls(f"{A} ; {B}\n"), [A, B])
        self.assertEqual(split_amqp_urls(A), [A])

    def test_query_commas_kept(self) -> None:
        """A comma inside pika's C{ssl_options} is not a separator."""
        self.assertEqual(split_amqp_urls(f"{A},{C}"), [A, C])

    def test_parse(self) -> None:
        """Each URL is parsed; hosts and ports in order."""
        addrs = parse_amqp_urls(f"{A},{B}")
        self.assertEqual([(a.host, a.port) for a in addrs], [("n1", 5672), ("n2", 5673)])

    def test_bad_one_named_redacted(self) -> None:
        """One bad URL fails the list with its redacted text, never the password."""
        e = self.assertRaises(ValueError, parse_amqp_urls, f"{A},amqp://u:secret@n2:notaport/")
        self.assertNotIn("secret", str(e))
        self.assertIn("n2", str(e))

    def test_empty(self) -> None:
        """An empty list is refused."""
        self.assertRaises(ValueError, HostList, [])


@implementer(IStreamClientEndpoint)
class _Endpoint:
    def __init__(self, log: list, name: str, result: Any) -> None:
        self.log, self.name, self.result = log, name, result

    def connect(self, factory: Any) -> Deferred:
        self.log.append(self.name)
        return self.result() if callable(self.result) else self.result


class FailoverEndpointTests(SynchronousTestCase):
    """L{HostList.endpoint} over several nodes."""

    def setUp(self) -> None:
        self.hosts = HostList(parse_amqp_urls(f"{A},{B},amqp://n3"))
        self.log: list = []

    def endpoint(self, results: dict) -> _FailoverEndpoint:
        return _FailoverEndpoint(
            self.hosts, lambda a: cast(Any, _Endpoint(self.log, a.host, results[a.host]))
        )

    def test_current_first(self) -> None:
        """A reachable current node is the only one tried."""
        ep = self.endpoint({"n1": lambda: succeed("p1")})
        self.assertEqual(self.successResultOf(ep.connect(cast(Any, None))), "p1")
        self.assertEqual((self.log, self.hosts.current.host), (["n1"], "n1"))

    def test_next_on_refusal(self) -> None:
        """A refused node moves on to the next; that one stays current."""
        ep = self.endpoint(
            {"n1": lambda: fail(ConnectionRefusedError()), "n2": lambda: succeed("p2")}
        )
        self.assertEqual(self.successResultOf(ep.connect(cast(Any, None))), "p2")
        self.assertEqual((self.log, self.hosts.current.host), (["n1", "n2"], "n2"))

    def test_all_refuse(self) -> None:
        """Each node is tried once per connect; then the last error."""
        refuse = lambda: fail(ConnectionRefusedError())  # noqa: E731
        ep = self.endpoint({"n1": refuse, "n2": refuse, "n3": refuse})
        self.failureResultOf(ep.connect(cast(Any, None)), ConnectionRefusedError)
        self.assertEqual(self.log, ["n1", "n2", "n3"])

    def test_cancel_stops_trying(self) -> None:
        """Cancelling the connect cancels the pending attempt and tries no other."""
        ep = self.endpoint({"n1": lambda: Deferred()})
        d = ep.connect(cast(Any, None))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.log, ["n1"])

    def test_shuffle(self) -> None:
        """C{shuffle=True} applies the shuffling function once."""
        hosts = HostList(parse_amqp_urls(f"{A},{B}"), shuffle=True, rng=lambda xs: xs.reverse())
        self.assertEqual([a.host for a in hosts.addresses], ["n2", "n1"])

    def test_single_host_plain_endpoint(self) -> None:
        """One URL gives that URL's own endpoint."""
        ep = HostList(parse_amqp_urls(A)).endpoint(MemoryReactorClock())
        self.assertNotIsInstance(ep, _FailoverEndpoint)


class ConnectionHostsTests(SynchronousTestCase):
    """L{AMQPConnection} with several URLs."""

    def test_set_up_failure_moves_on(self) -> None:
        """A node whose AMQP set-up fails is left for the next one."""
        conn = AMQPConnection(f"{A},{B}", reactor=MemoryReactorClock())
        self.assertEqual(conn.address.host, "n1")
        conn._protocol_failed(object(), ConnectionRefusedError())
        self.assertEqual(conn.address.host, "n2")

    def test_connects_through_the_host_list(self) -> None:
        """startService connects through the host list's endpoint, first node current."""
        reactor = MemoryReactorClock()
        conn = AMQPConnection(f"{A},{B}", reactor=reactor)
        log: list = []
        endpoint = _FailoverEndpoint(
            conn.hosts, lambda a: cast(Any, _Endpoint(log, a.host, Deferred()))
        )
        conn.hosts.endpoint = lambda *args: endpoint  # type: ignore[method-assign]
        conn.startService()
        self.addCleanup(conn.stopService)
        self.assertEqual(log, ["n1"])


class OptionTests(SynchronousTestCase):
    """C{--amqp} accepts a list."""

    def test_list_accepted(self) -> None:
        """A list of valid URLs passes the option check unchanged."""
        self.assertEqual(check_amqp_url(f"{A},{B}", "--amqp"), f"{A},{B}")

    def test_bad_member_one_line(self) -> None:
        """One bad URL in the list: one line naming the option, no password."""
        e = self.assertRaises(ValueError, check_amqp_url, f"{A},http://x", "--amqp")
        self.assertIn("--amqp", str(e))
        self.assertNotIn("secret", str(e))
        self.assertNotIn("\n", str(e))

# -*- test-case-name: txmsg.test.test_redis_streams -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.redis.streams} (entries, keys) and the streams of the
in-memory Redis (L{txmsg.testing._redis_streams}) beyond the contract.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txmsg.redis.streams import StreamKeys, decode_entry, encode_entry, parse_entries
from txmsg.test._optional import fuzz
from txmsg.testing._redis_reply import ResponseError
from txmsg.testing._redis_store import FakeRedis


class EntryTests(SynchronousTestCase):
    """
    Encoding and decoding stream entries.
    """

    def test_round_trip(self) -> None:
        """
        Every property set survives encoding; unset ones are left out.
        """
        fields = encode_entry(
            b"\x00\xffbody",
            {"x-txmsg-attempts": 2},
            content_type="application/json",
            message_id="m1",
            reply_to=None,
        )
        self.assertNotIn(b"reply_to", fields[::2])
        entry = decode_entry("1-0", fields, deliveries=3)
        self.assertEqual(entry.body, b"\x00\xffbody")
        self.assertEqual(entry.headers, {"x-txmsg-attempts": 2})
        self.assertEqual((entry.content_type, entry.message_id), ("application/json", "m1"))
        self.assertIsNone(entry.reply_to)
        self.assertEqual((entry.entry_id, entry.deliveries), ("1-0", 3))

    def test_bad_headers_passed_on(self) -> None:
        """
        A C{headers} field that is not JSON is passed on as text, for the
        worker's header check to reject.
        """
        entry = decode_entry(b"1-0", [b"body", b"x", b"headers", b"{nope"])
        self.assertEqual(entry.headers, "{nope")

    def test_parse_skips_deleted(self) -> None:
        """
        Entries deleted while pending (no fields) are skipped.
        """
        reply = [["s", [["1-0", None], ["2-0", ["body", "b"]]]]]
        self.assertEqual([e.entry_id for e in parse_entries(reply)], ["2-0"])
        self.assertEqual(parse_entries(None), [])

    def test_keys_share_a_hash_tag(self) -> None:
        """
        Every key of a queue carries the hash tag C{{queue}}.
        """
        keys = StreamKeys("orders")
        for key in (keys.stream, keys.dead, keys.delay_due, keys.delay_items):
            self.assertIn("{orders}", key)

    @fuzz(lambda st: st.lists(st.binary(max_size=40), max_size=12))
    def test_decode_never_raises(self, fields: list[bytes]) -> None:
        """
        Any field list decodes to an entry (hostile producers).
        """
        entry = decode_entry(b"1-0", fields)
        self.assertIsInstance(entry.body, bytes)


class MemoryStreamTests(SynchronousTestCase):
    """
    Details of the in-memory streams.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = FakeRedis(self.clock)

    def cmd(self, *args: Any) -> Any:
        return self.successResultOf(self.redis.execute_command(*args))

    def test_ids_increase_within_a_millisecond(self) -> None:
        """
        Two entries added in the same millisecond get sequence numbers.
        """
        self.assertEqual(self.cmd("XADD", "s", "*", "a", "1"), "0-1")
        self.assertEqual(self.cmd("XADD", "s", "*", "a", "2"), "0-2")
        self.clock.advance(1)
        self.assertEqual(self.cmd("XADD", "s", "*", "a", "3"), "1000-0")

    def test_maxlen_trims_oldest(self) -> None:
        """
        C{MAXLEN} keeps the newest entries.
        """
        for n in range(5):
            self.cmd("XADD", "s", "MAXLEN", "~", 2, "*", "n", n)
        self.assertEqual([f[1] for _, f in self.cmd("XRANGE", "s", "-", "+")], ["3", "4"])

    def test_nogroup(self) -> None:
        """
        Reading a group that does not exist fails with C{NOGROUP}.
        """
        f = self.failureResultOf(
            self.redis.execute_command("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
        )
        self.assertIn("NOGROUP", str(f.value))
        f.trap(ResponseError)

    def test_autoclaim_drops_deleted(self) -> None:
        """
        XAUTOCLAIM removes pending entries deleted from the stream and
        reports them.
        """
        self.cmd("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM")
        entry = self.cmd("XADD", "s", "*", "a", "1")
        self.cmd("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
        self.cmd("XDEL", "s", entry)
        self.clock.advance(5)
        self.assertEqual(self.cmd("XAUTOCLAIM", "s", "g", "d", 1000, "0-0"), ["0-0", [], [entry]])
        self.assertEqual(self.cmd("XPENDING", "s", "g")[0], 0)

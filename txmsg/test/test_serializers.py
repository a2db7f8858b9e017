# -*- test-case-name: txmsg.test.test_serializers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.serializers}.
"""

from __future__ import annotations

import sys

from twisted.trial.unittest import SynchronousTestCase

from txmsg import serializers
from txmsg.serializers import SerializationError, UnknownSerializer, get_serializer
from txmsg.test._optional import skip_unless_importable


class SerializerTests(SynchronousTestCase):
    """
    Tests for the serializers and L{get_serializer}.
    """

    def test_json_roundtrip(self) -> None:
        """
        JSON is compact UTF-8 and round-trips.
        """
        s = get_serializer("json")
        self.assertEqual(s.dumps({"a": "é"}), '{"a":"é"}'.encode())
        self.assertEqual(s.loads(s.dumps([1, "x"])), [1, "x"])

    def test_json_errors(self) -> None:
        """
        Unencodable values and invalid JSON raise L{SerializationError}.
        """
        s = get_serializer("json")
        self.assertRaises(SerializationError, s.dumps, object())
        self.assertRaises(SerializationError, s.loads, b"{nope")

    def test_bytes_and_text(self) -> None:
        """
        C{bytes} passes bytes through; C{text} decodes strict UTF-8.
        """
        self.assertEqual(get_serializer("bytes").loads(b"\xff"), b"\xff")
        self.assertEqual(get_serializer("bytes").dumps("é"), "é".encode())
        self.assertRaises(SerializationError, get_serializer("bytes").dumps, 3)
        self.assertEqual(get_serializer("text").loads("é".encode()), "é")
        self.assertRaises(SerializationError, get_serializer("text").loads, b"\xff")

    @skip_unless_importable("msgpack", extra="msgpack")
    def test_msgpack_roundtrip(self) -> None:
        """
        msgpack round-trips when the package is installed.
        """
        s = get_serializer("msgpack")
        self.assertEqual(s.loads(s.dumps({"a": [1, b"b"]})), {"a": [1, b"b"]})
        self.assertRaises(SerializationError, s.loads, b"\xc1")

    def test_msgpack_missing(self) -> None:
        """
        Without the msgpack package, asking for it is a clear error.
        """
        self.patch(serializers, "_cache", {})
        saved = sys.modules.pop("msgpack", None)
        sys.modules["msgpack"] = None  # type: ignore[assignment]

        def restore() -> None:
            del sys.modules["msgpack"]
            if saved is not None:
                sys.modules["msgpack"] = saved

        self.addCleanup(restore)
        e = self.assertRaises(UnknownSerializer, get_serializer, "msgpack")
        self.assertIn("pip install msgpack", str(e))

    def test_pickle_explicit(self) -> None:
        """
        Pickle is only handed out by name, with a warning logged.
        """
        self.patch(serializers, "_cache", {})
        s = get_serializer("pickle")
        self.assertEqual(s.loads(s.dumps({1, 2})), {1, 2})

    def test_unknown(self) -> None:
        """
        Unknown names and objects without dumps/loads are rejected.
        """
        self.assertRaises(UnknownSerializer, get_serializer, "yaml")
        self.assertRaises(UnknownSerializer, get_serializer, object())

    def test_custom(self) -> None:
        """
        Any object with dumps and loads is accepted as it is.
        """

        class Upper:
            name = "upper"

            def dumps(self, v):
                return v.upper().encode()

            def loads(self, b):
                return b.decode().lower()

        u = Upper()
        self.assertIs(get_serializer(u), u)

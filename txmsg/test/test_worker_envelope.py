# -*- test-case-name: txmsg.test.test_worker_envelope -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.envelope}.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._optional import fuzz
from txmsg.worker.envelope import (
    MalformedTask,
    Task,
    decode_result,
    decode_task,
    encode_error,
    encode_result,
    encode_task,
    load_json,
)


class TaskCodecTests(SynchronousTestCase):
    """
    Tests for L{encode_task} and L{decode_task}.
    """

    def test_round_trip(self) -> None:
        """
        A task survives encoding and decoding.
        """
        task = Task("add", (1, 2), {"scale": 3}, "abc")
        self.assertEqual(decode_task(encode_task(task), "application/json"), task)

    def test_wire_format(self) -> None:
        """
        The body is the documented v1 JSON object.
        """
        body = json.loads(encode_task(Task("fib", (30,), {}, "id-1")))
        self.assertEqual(body, {"task": "fib", "args": [30], "kwargs": {}, "id": "id-1"})

    def test_defaults(self) -> None:
        """
        C{args} and C{kwargs} are optional; the id falls back to the message
        id, then to a fresh one.
        """
        self.assertEqual(decode_task(b'{"task": "t"}', None, "mid"), Task("t", (), {}, "mid"))
        self.assertTrue(decode_task(b'{"task": "t"}').id)

    def test_charset_parameter_allowed(self) -> None:
        """
        C{application/json; charset=utf-8} is JSON.
        """
        self.assertEqual(
            decode_task(b'{"task": "t", "id": "1"}', "application/json; charset=utf-8").name, "t"
        )

    def test_malformed(self) -> None:
        """
        Each kind of bad body is a L{MalformedTask} saying what is wrong.
        """
        cases = [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1, 2]", "not an object"),
            (b'{"args": []}', "'task' must be"),
            (b'{"task": ""}', "'task' must be"),
            (b'{"task": "t", "args": {}}', "'args' must be a list"),
            (b'{"task": "t", "kwargs": []}', "'kwargs' must be an object"),
            (b'{"task": "t", "id": 5}', "'id' must be"),
            (b'{"task": "t", "extra": 1}', "unknown field(s): extra"),
        ]
        for body, reason in cases:
            e = self.assertRaises(MalformedTask, decode_task, body)
            self.assertIn(reason, str(e))

    def test_wrong_content_type(self) -> None:
        """
        A message that says it is not JSON is malformed.
        """
        e = self.assertRaises(MalformedTask, decode_task, b'{"task": "t"}', "text/plain")
        self.assertIn("text/plain", str(e))

    def test_unserializable_argument(self) -> None:
        """
        Encoding an argument JSON cannot represent is a TypeError or
        ValueError at submission, not a broken message later.
        """
        self.assertRaises(TypeError, encode_task, Task("t", (object(),)))
        self.assertRaises(ValueError, encode_task, Task("t", (float("nan"),)))


class ResultCodecTests(SynchronousTestCase):
    """
    Tests for the reply encoding.
    """

    def test_ok(self) -> None:
        """
        A success reply carries the id, status C{ok} and the result.
        """
        body = encode_result("i", [1, 2])
        self.assertEqual(json.loads(body), {"id": "i", "status": "ok", "result": [1, 2]})
        r = decode_result(body)
        self.assertEqual((r.id, r.ok, r.result), ("i", True, [1, 2]))

    def test_error(self) -> None:
        """
        An error reply carries the exception type and message.
        """
        body = encode_error("i", "ZeroDivisionError", "division by zero")
        self.assertEqual(
            json.loads(body),
            {
                "id": "i",
                "status": "error",
                "error": {"type": "ZeroDivisionError", "message": "division by zero"},
            },
        )
        r = decode_result(body)
        self.assertEqual(
            (r.ok, r.error_type, r.error_message), (False, "ZeroDivisionError", "division by zero")
        )

    def test_not_a_reply(self) -> None:
        """
        A body that is not a reply is a ValueError.
        """
        self.assertRaises(ValueError, decode_result, b'{"x": 1}')
        self.assertRaises(ValueError, decode_result, b"nope")


def _json_outcome(load, body):
    try:
        return ("value", load(body))
    except Exception as e:
        return ("error", type(e), str(e))


class LoadJSONTests(SynchronousTestCase):
    """
    L{load_json} reads any body as C{json.loads} does.
    """

    def test_encodings(self):
        """
        Bodies in UTF-8, with a BOM, in UTF-16 and UTF-32 (which
        C{json.loads} detects), and ones that are not valid.
        """
        text = '{"task": "n\u00e9", "args": [1]}'
        bodies = [
            text.encode("utf-8"),
            text.encode("utf-8-sig"),
            text.encode("utf-16"),
            text.encode("utf-16-le"),
            text.encode("utf-32-be"),
            b'{"a": "\xff"}',
            b'{"a": "\xed\xa0\x80"}',  # a lone surrogate, as surrogatepass reads it
            b"{\x00",
            b"{",
            b"",
            b"[1]",
        ]
        for body in bodies:
            self.assertEqual(_json_outcome(load_json, body), _json_outcome(json.loads, body))

    @fuzz(
        lambda st: st.one_of(
            st.binary(max_size=40),
            st.binary(max_size=40).map(lambda b: b"{" + b),
            st.text(max_size=20).map(lambda t: ('{"k": %s}' % json.dumps(t)).encode()),
        )
    )
    def test_any_body(self, body):
        """Any bytes: the same value, or the same error."""
        self.assertEqual(_json_outcome(load_json, body), _json_outcome(json.loads, body))

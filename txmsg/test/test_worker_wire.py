# -*- test-case-name: txmsg.test.test_worker_wire -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for the versioned task envelope (L{txmsg.worker.envelope}, version 2)
and the fuzzing of its decoder.
"""

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._optional import fuzz
from txmsg.worker.envelope import (
    VERSION,
    MalformedTask,
    Task,
    UnsupportedVersion,
    decode_task,
    encode_task,
)


class VersionTests(SynchronousTestCase):
    """
    Which version a body is, and what each version may hold.
    """

    def test_plain_task_stays_v1(self) -> None:
        """
        A task that uses no v2 field is written as a v1 body, exactly, so an
        old worker runs it.
        """
        body = json.loads(encode_task(Task("add", (2, 3), {}, "i")))
        self.assertEqual(body, {"task": "add", "args": [2, 3], "kwargs": {}, "id": "i"})

    def test_v2_round_trip(self) -> None:
        """
        A task with v2 fields is written with C{"v": 2} and read back equal.
        """
        task = Task("add", (2,), {"b": 3}, "i", eta=100.5, expires=200, parent_id="p", root_id="r")
        body = json.loads(encode_task(task))
        self.assertEqual(
            body,
            {
                "v": 2,
                "task": "add",
                "args": [2],
                "kwargs": {"b": 3},
                "id": "i",
                "eta": 100.5,
                "expires": 200,
                "parent_id": "p",
                "root_id": "r",
            },
        )
        self.assertEqual(decode_task(encode_task(task)), task)

    def test_v1_explicit(self) -> None:
        """
        C{"v": 1} is version 1, which has no v2 fields.
        """
        self.assertEqual(decode_task(b'{"v": 1, "task": "t", "id": "i"}'), Task("t", (), {}, "i"))
        e = self.assertRaises(MalformedTask, decode_task, b'{"v": 1, "task": "t", "eta": 5}')
        self.assertIn("unknown field(s): eta", str(e))

    def test_v2_fields_without_version_are_malformed(self) -> None:
        """
        A v2 field in a body that does not say C{"v": 2} is a v1 body with an
        unknown field: exactly what a version-1 worker does with any v2 body.
        """
        e = self.assertRaises(MalformedTask, decode_task, b'{"task": "t", "expires": 5}')
        self.assertEqual(e.reason, "malformed")

    def test_future_version(self) -> None:
        """
        A version above L{VERSION} is L{UnsupportedVersion}, dead-letter
        reason C{unsupported-version}, whatever else the body holds.
        """
        body = json.dumps({"v": VERSION + 1, "task": "t", "new": {"x": 1}}).encode()
        e = self.assertRaises(UnsupportedVersion, decode_task, body)
        self.assertEqual(e.reason, "unsupported-version")
        self.assertIn("upgrade the worker", str(e))

    def test_bad_version(self) -> None:
        """
        C{v} must be a positive integer.
        """
        for v in ("2", 0, -1, True, 2.0, None, [2]):
            body = json.dumps({"v": v, "task": "t"}).encode()
            e = self.assertRaises(MalformedTask, decode_task, body)
            self.assertEqual(e.reason, "malformed", v)

    def test_bad_times(self) -> None:
        """
        C{eta} and C{expires} are Unix times: finite, non-negative numbers
        below the year 2286.
        """
        for value in ("soon", True, -1, 1e11, [1], {"t": 1}):
            for key in ("eta", "expires"):
                body = json.dumps({"v": 2, "task": "t", key: value}).encode()
                e = self.assertRaises(MalformedTask, decode_task, body)
                self.assertIn(repr(key), str(e))
        for literal in (b"NaN", b"Infinity", b"-Infinity"):
            body = b'{"v": 2, "task": "t", "eta": ' + literal + b"}"
            self.assertRaises(MalformedTask, decode_task, body)

    def test_bad_ids(self) -> None:
        """
        C{parent_id} and C{root_id} are non-empty strings.
        """
        for value in ("", 5, ["x"]):
            body = json.dumps({"v": 2, "task": "t", "root_id": value}).encode()
            self.assertRaises(MalformedTask, decode_task, body)

    def test_null_fields_are_absent(self) -> None:
        """
        A v2 field that is C{null} is as if absent.
        """
        body = b'{"v": 2, "task": "t", "id": "i", "eta": null, "parent_id": null}'
        self.assertEqual(decode_task(body), Task("t", (), {}, "i"))

    def test_encode_refuses_nan(self) -> None:
        """
        A time that is not a finite number is refused when encoding.
        """
        self.assertRaises(ValueError, encode_task, Task("t", eta=float("nan")))


def _json_values(st: Any) -> Any:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )


def _envelopes(st: Any) -> Any:
    keys = st.sampled_from(
        ["v", "task", "args", "kwargs", "id", "eta", "expires", "parent_id", "root_id", "x"]
    )
    return st.dictionaries(keys, _json_values(st), max_size=9)


class FuzzTests(SynchronousTestCase):
    """
    Hostile input: the decoder either returns a well-formed L{Task} or raises
    L{MalformedTask}, nothing else.
    """

    def check(self, body: bytes) -> None:
        try:
            task = decode_task(body)
        except MalformedTask as e:
            self.assertIn(e.reason, ("malformed", "unsupported-version"))
            return
        self.assertIsInstance(task.name, str)
        self.assertTrue(task.name and task.id)
        self.assertIsInstance(task.args, tuple)
        for t in (task.eta, task.expires):
            self.assertTrue(t is None or 0 <= t <= 1e10)
        # What was read can be written and read again, the same.
        self.assertEqual(decode_task(encode_task(task)), task)

    @fuzz(lambda st: st.binary(max_size=300))
    def test_bytes(self, body: bytes) -> None:
        """
        Arbitrary bytes.
        """
        self.check(body)

    @fuzz(_envelopes, examples=500)
    def test_objects(self, data: dict) -> None:
        """
        JSON objects with the envelope's keys (and one unknown) holding
        values of any JSON type.
        """
        self.check(json.dumps(data).encode())

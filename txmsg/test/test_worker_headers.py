# -*- test-case-name: txmsg.test.test_worker_headers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.headers} and the envelope decoder as untrusted
input, with property-based fuzzing.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._optional import fuzz
from txmsg.worker.envelope import MAX_DEPTH, MalformedTask, Task, decode_task
from txmsg.worker.headers import (
    ATTEMPT_HEADER,
    DELIVERY_COUNT_HEADER,
    ONCE_HEADER,
    REDELIVERED_HEADER,
    BadHeaders,
    DeliveryHeaders,
    read_headers,
)

#: The body that made C{decode_task} raise C{RecursionError}.
NESTED = ('{"task":"add","args":[' + "[" * 1000 + "]" * 1000 + ",1]}").encode()


def _values(st: Any) -> Any:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )


def _headers(st: Any) -> Any:
    names = st.sampled_from(
        [ATTEMPT_HEADER, DELIVERY_COUNT_HEADER, REDELIVERED_HEADER, ONCE_HEADER, "x-other"]
    )
    return st.one_of(_values(st), st.dictionaries(names, _values(st), max_size=4))


class ReadHeadersTests(SynchronousTestCase):
    """
    L{read_headers} validates the headers the worker reads.
    """

    def test_none(self) -> None:
        """No headers: no attempts, no count."""
        self.assertEqual(read_headers(None), DeliveryHeaders())

    def test_valid(self) -> None:
        """Counts a worker or RabbitMQ writes are read."""
        headers = {ATTEMPT_HEADER: 2, DELIVERY_COUNT_HEADER: 1, REDELIVERED_HEADER: 1}
        self.assertEqual(read_headers(headers), DeliveryHeaders(2, 1, True))
        self.assertEqual(read_headers({ONCE_HEADER: 1}), DeliveryHeaders(once=True))

    def test_bad_values(self) -> None:
        """
        A count that is not an integer, is negative or absurdly large, or a
        boolean, is refused with the header's name.
        """
        for value in ["abc", "3", -5, 10**12, 1.5, True, [1], b"1"]:
            with self.assertRaises(BadHeaders) as e:
                read_headers({ATTEMPT_HEADER: value})
            self.assertIn(ATTEMPT_HEADER, str(e.exception))
        self.assertRaises(BadHeaders, read_headers, {DELIVERY_COUNT_HEADER: -1})
        self.assertRaises(BadHeaders, read_headers, {REDELIVERED_HEADER: "yes"})
        self.assertRaises(BadHeaders, read_headers, {ONCE_HEADER: 2})
        self.assertRaises(BadHeaders, read_headers, ["not", "a", "table"])

    @fuzz(_headers)
    def test_fuzz(self, headers: Any) -> None:
        """Any headers give valid counts or L{BadHeaders}, never another exception."""
        try:
            result = read_headers(headers)
        except BadHeaders:
            return
        self.assertGreaterEqual(result.attempts, 0)
        self.assertTrue(result.delivery_count is None or result.delivery_count >= 0)


class DecodeTaskFuzzTests(SynchronousTestCase):
    """
    L{decode_task} on hostile bodies: a valid task or L{MalformedTask}.
    """

    def test_deep_nesting_is_malformed(self) -> None:
        """
        A body nested 1,000 deep is malformed (it made the JSON parser raise
        C{RecursionError}); nesting up to L{MAX_DEPTH} is fine.
        """
        with self.assertRaises(MalformedTask) as e:
            decode_task(NESTED)
        self.assertIn("nests deeper", str(e.exception))
        inner = MAX_DEPTH - 2  # inside the object and the args list
        ok = '{"task":"t","args":[' + "[" * inner + "]" * inner + "]}"
        self.assertEqual(decode_task(ok.encode()).name, "t")

    def test_brackets_in_strings(self) -> None:
        """Brackets inside strings are not nesting."""
        body = json.dumps({"task": "t", "args": ["[" * 500, '\\"{' * 200]}).encode()
        self.assertEqual(decode_task(body).args, ("[" * 500, '\\"{' * 200))

    def _check(self, body: bytes, content_type: str | None = None) -> None:
        try:
            task = decode_task(body, content_type)
        except MalformedTask:
            return
        self.assertIsInstance(task, Task)
        self.assertTrue(task.name and task.id)

    @fuzz(lambda st: st.binary(max_size=300), lambda st: st.one_of(st.none(), st.text(max_size=30)))
    def test_fuzz_bytes(self, body: bytes, content_type: str | None) -> None:
        """Any bytes and content type: a task or L{MalformedTask}."""
        self._check(body, content_type)

    @fuzz(
        lambda st: st.dictionaries(
            st.sampled_from(["task", "args", "kwargs", "id", "x"]), _values(st), max_size=5
        ),
        lambda st: st.integers(min_value=0, max_value=1200),
    )
    def test_fuzz_json(self, data: dict, depth: int) -> None:
        """Any JSON object, with arguments nested to any depth: a task or L{MalformedTask}."""
        try:
            body = json.dumps(data).encode()
        except (TypeError, ValueError):
            return
        self._check(body, "application/json")
        nested = "[" * depth + "]" * depth
        self._check(('{"task":"t","args":[' + nested + "]}").encode(), "application/json")

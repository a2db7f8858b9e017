# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests for L{txmsg.worker.states}: the lifecycle's transitions (every legal
and every illegal one) and reading stored states back.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txmsg.test._optional import fuzz
from txmsg.worker.states import (
    ABSENT,
    DEAD_LETTERED,
    EXPIRED,
    FAILED,
    PENDING,
    RETRYING,
    REVOKE_FROM,
    REVOKED,
    STARTED,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    IllegalTransition,
    check_transition,
    decode_state,
    encode_fields,
)

# Every legal (from, to); None is "nothing stored yet".
LEGAL = {
    (None, PENDING),
    (PENDING, PENDING),
    (None, STARTED),
    (PENDING, STARTED),
    (STARTED, STARTED),
    (RETRYING, STARTED),
}
for _to in (RETRYING, SUCCEEDED, FAILED, DEAD_LETTERED, REVOKED):
    for _from in (None, PENDING, STARTED, RETRYING):
        LEGAL.add((_from, _to))
for _from in (None, PENDING, RETRYING):
    LEGAL.add((_from, EXPIRED))


class TransitionTests(SynchronousTestCase):
    """L{check_transition} over the whole table."""

    def test_every_pair(self) -> None:
        """
        Each of the 9 x 8 (from, to) pairs is allowed exactly when the
        lifecycle says so; the others raise L{IllegalTransition}.
        """
        checked = 0
        for current in (None,) + STATUSES:
            for new in STATUSES:
                checked += 1
                if (current, new) in LEGAL:
                    check_transition(current, new)
                else:
                    self.assertRaises(IllegalTransition, check_transition, current, new)
        self.assertEqual(checked, 72)

    def test_terminal_never_changes(self) -> None:
        """No status replaces a terminal one, not even itself."""
        for current in TERMINAL:
            for new in STATUSES:
                self.assertRaises(IllegalTransition, check_transition, current, new)

    def test_started_does_not_expire(self) -> None:
        """Expiry is decided before a task starts: started -> expired is illegal."""
        self.assertRaises(IllegalTransition, check_transition, STARTED, EXPIRED)

    def test_back_to_pending(self) -> None:
        """Nothing goes back to pending once it started or is retrying."""
        for current in (STARTED, RETRYING):
            self.assertRaises(IllegalTransition, check_transition, current, PENDING)

    def test_revoke_from(self) -> None:
        """A revoke request marks only tasks that are not running."""
        self.assertEqual(REVOKE_FROM, {ABSENT, PENDING, RETRYING})

    def test_unknown_status(self) -> None:
        """An unknown target status is a ValueError."""
        self.assertRaises(ValueError, check_transition, None, "exploded")


class EncodingTests(SynchronousTestCase):
    """L{encode_fields} and L{decode_state}."""

    def test_round_trip(self) -> None:
        """Fields written by L{encode_fields} read back as the same values."""
        pairs = encode_fields(
            task="add",
            result={"sum": [1, 2.5]},
            attempts=2,
            created=1.25,
            started=2.5,
            finished=None,
            worker="w1",
            error_type=None,
        )
        fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
        fields["status"] = SUCCEEDED
        state = decode_state("t1", {k.encode(): v.encode() for k, v in fields.items()})
        assert state is not None
        self.assertEqual(
            (state.id, state.status, state.task, state.result, state.attempts),
            ("t1", SUCCEEDED, "add", {"sum": [1, 2.5]}, 2),
        )
        self.assertEqual((state.created, state.started, state.finished), (1.25, 2.5, None))
        self.assertEqual((state.worker, state.error_type), ("w1", None))
        self.assertTrue(state.done and state.ok)
        self.assertEqual(state.as_dict()["result"], {"sum": [1, 2.5]})

    def test_nothing_stored(self) -> None:
        """An empty hash is L{None}."""
        self.assertIsNone(decode_state("t", {}))

    def test_unserializable_result(self) -> None:
        """A result JSON cannot carry is a TypeError, NaN a ValueError."""
        self.assertRaises(TypeError, encode_fields, result=object())
        self.assertRaises(ValueError, encode_fields, result=float("nan"))

    def test_unknown_field(self) -> None:
        """Only L{TaskState} fields can be written; the status has its own argument."""
        self.assertRaises(TypeError, encode_fields, colour="red")
        self.assertRaises(TypeError, encode_fields, status="succeeded")

    def test_hostile(self) -> None:
        """Malformed numbers read as nothing, a malformed result as its text."""
        state = decode_state(
            "t",
            {b"status": b"failed", b"attempts": b"x", b"created": b"inf", b"result": b"{"},
        )
        assert state is not None
        self.assertEqual((state.attempts, state.created, state.result), (0, None, "{"))

    @fuzz(lambda st: st.dictionaries(st.binary(max_size=20), st.binary(max_size=50), max_size=8))
    def test_fuzz(self, fields: dict[bytes, bytes]) -> None:
        """Any hash decodes to a state (or L{None}) without raising."""
        state = decode_state("t", fields)
        self.assertEqual(state is None, not fields)

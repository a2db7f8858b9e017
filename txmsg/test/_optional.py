# -*- test-case-name: txmsg.test.test_serializers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Tests that need an optional package skip, saying which extra installs it,
when the package is absent (a plain C{pip install txmsg} has no extras; the
Makefile installs them all, so nothing skips there).

    @skip_unless_importable("msgpack", extra="msgpack")
    def test_msgpack_roundtrip(self): ...
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["fuzz", "missing", "skip_unless_importable"]

F = TypeVar("F", bound=Callable[..., object])


def missing(module: str, extra: str | None = None) -> str | None:
    """
    The skip reason when C{module} cannot be imported, else L{None}.

    @param module: the top-level module name.
    @param extra: the txmsg extra that installs it (C{pip install txmsg[extra]}),
        or L{None} for a test-only package of C{requirements-dev.txt}.
    """
    if importlib.util.find_spec(module) is not None:
        return None
    where = (
        "pip install 'txmsg[{}]'".format(extra) if extra else "pip install -r requirements-dev.txt"
    )
    return "needs the optional package {!r}: {}".format(module, where)


def skip_unless_importable(module: str, extra: str | None = None) -> Callable[[F], F]:
    """
    Mark a test (or test class) to be skipped by trial, with the reason,
    when C{module} is not importable.
    """

    def mark(test: F) -> F:
        reason = missing(module, extra)
        if reason is not None:
            test.skip = reason  # type: ignore[attr-defined]
        return test

    return mark


def fuzz(*strategies: Callable[[Any], Any], examples: int = 300) -> Callable[[F], F]:
    """
    A property-based test with C{hypothesis} (a test dependency, absent from a
    plain install: the test is then skipped with the reason).

        @fuzz(lambda st: st.binary(max_size=300))
        def test_decoder(self, body): ...

    @param strategies: one function per argument, called with
        C{hypothesis.strategies}, returning that argument's strategy.
    @param examples: examples per run.
    """

    def mark(test: F) -> F:
        reason = missing("hypothesis")
        if reason is not None:
            test.skip = reason  # type: ignore[attr-defined]
            return test
        hypothesis = importlib.import_module("hypothesis")
        st = importlib.import_module("hypothesis.strategies")
        given = hypothesis.given(*(strategy(st) for strategy in strategies))
        settings = hypothesis.settings(max_examples=examples, deadline=None)
        return settings(given(test))

    return mark

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

import importlib.util
from collections.abc import Callable
from typing import TypeVar

__all__ = ["missing", "skip_unless_importable"]

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

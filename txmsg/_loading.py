# -*- test-case-name: txmsg.test.test_schedule_entries,txmsg.test.test_worker_tasks -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Load a user object named on the command line (C{package.module} or
C{package.module:attribute}): the task catalog, the schedule.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

__all__ = ["load_named"]

T = TypeVar("T")


def load_named(spec: str, kind: type[T], default_attribute: str, what: str) -> T:
    """
    Load the C{kind} object named by C{spec}: C{"package.module"} (its
    attribute C{default_attribute}, or its only C{kind} object) or
    C{"package.module:attribute"}.

    @param what: how messages name the module, e.g. C{"task module"}.
    @raise ValueError: with a one-line reason when it cannot be loaded.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ValueError(
            "cannot import {} {!r}: {}: {}".format(what, module_name, type(e).__name__, e)
        ) from e
    name = kind.__name__
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, kind):
            raise ValueError("{!r} is not a {} in module {!r}".format(attribute, name, module_name))
        return found
    objects = {k: v for k, v in vars(module).items() if isinstance(v, kind)}
    if default_attribute in objects:
        return objects[default_attribute]
    if len(objects) == 1:
        return next(iter(objects.values()))
    if not objects:
        raise ValueError("module {!r} defines no {}".format(module_name, name))
    raise ValueError(
        "module {!r} defines several {} objects ({}); name one as {}:NAME".format(
            module_name, name, ", ".join(sorted(objects)), module_name
        )
    )

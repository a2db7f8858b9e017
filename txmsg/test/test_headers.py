# -*- test-case-name: txmsg.test.test_headers -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Every module's C{test-case-name} header names test modules that exist.

C{trial --testmodule FILE} (and editors that use it) runs the tests a module
names in its first line; a header naming a module that was renamed or never
written runs nothing and says so only in passing.
"""

from __future__ import annotations

import os
import re

from twisted.trial.unittest import SynchronousTestCase

import txmsg

_HEADER = re.compile(r"^# -\*- test-case-name: (?P<names>[\w.,\s]+?) -\*-$")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(txmsg.__file__)))
_PACKAGE = os.path.dirname(os.path.abspath(txmsg.__file__))


def modules(package: str = _PACKAGE) -> list[str]:
    """
    The paths of every C{.py} file under C{package}.
    """
    found = []
    for directory, _subdirs, files in os.walk(package):
        found.extend(os.path.join(directory, name) for name in files if name.endswith(".py"))
    return sorted(found)


def named_modules(path: str) -> list[str] | None:
    """
    The dotted names in C{path}'s C{test-case-name} header, or L{None} when
    its first line is not such a header.
    """
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
    match = _HEADER.match(first)
    if match is None:
        return None
    return [name.strip() for name in match.group("names").split(",") if name.strip()]


def module_exists(dotted: str, root: str = _ROOT) -> bool:
    """
    Whether C{dotted} is a module or package below C{root}, found without
    importing it.
    """
    base = os.path.join(root, *dotted.split("."))
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


class HeaderTests(SynchronousTestCase):
    """
    The C{test-case-name} headers of txmsg's modules.
    """

    def test_found(self) -> None:
        """
        The walk finds txmsg's modules, this one among them (so the other
        tests cannot pass by checking nothing).
        """
        self.assertIn(os.path.abspath(__file__.replace(".pyc", ".py")), modules())

    def test_library_modules_have_a_header(self) -> None:
        """
        Every module outside C{txmsg/test} starts with a C{test-case-name}
        header.
        """
        tests = os.path.join(_PACKAGE, "test") + os.sep
        missing = [
            os.path.relpath(path, _ROOT)
            for path in modules()
            if not path.startswith(tests) and named_modules(path) is None
        ]
        self.assertEqual(missing, [])

    def test_headers_name_existing_modules(self) -> None:
        """
        Every name in every header is an existing module or package.
        """
        dangling = [
            (os.path.relpath(path, _ROOT), name)
            for path in modules()
            for name in named_modules(path) or []
            if not module_exists(name)
        ]
        self.assertEqual(dangling, [])

    def test_parsing(self) -> None:
        """
        L{named_modules} reads one or several comma-separated names from the
        first line only, and L{module_exists} tells modules and packages from
        missing names.
        """
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("# -*- test-case-name: txmsg.test.test_a, txmsg.test.test_b -*-\n")
        self.assertEqual(named_modules(path), ["txmsg.test.test_a", "txmsg.test.test_b"])
        with open(path, "w", encoding="utf-8") as f:
            f.write('"""\n# -*- test-case-name: txmsg.test.test_a -*-\n"""\n')
        self.assertIsNone(named_modules(path))
        self.assertTrue(module_exists("txmsg.test.test_headers"))
        self.assertTrue(module_exists("txmsg.test"))
        self.assertFalse(module_exists("txmsg.test.test_no_such_module"))

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Packaging: the twistd plugins are discoverable and the wheel ships them
without shadowing Twisted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PluginTests(SynchronousTestCase):
    """
    Twisted finds txmsg's plugins.
    """

    def test_plugins_listed(self) -> None:
        """
        C{getPlugins(IServiceMaker)} lists txmsg-echo, and C{twistd --help}
        shows it.
        """
        self.assertIn("txmsg-echo", {p.tapname for p in getPlugins(IServiceMaker)})
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        out = subprocess.run([twistd, "--help"], capture_output=True, text=True, timeout=60).stdout
        self.assertIn("txmsg-echo", out)

    def test_plugin_file_imports_nothing_heavy(self) -> None:
        """
        Importing the plugin module imports neither txmsg, pika nor txredisapi.
        """
        code = (
            "import sys, runpy; runpy.run_path(sys.argv[1]);"
            "bad = [m for m in ('txmsg', 'pika', 'txredisapi', 'twisted.internet.reactor')"
            " if m in sys.modules]; print(bad)"
        )
        path = os.path.join(ROOT, "twisted", "plugins", "txmsg_plugins.py")
        out = subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)


class ImportTests(SynchronousTestCase):
    """
    Importing txmsg installs no reactor.
    """

    def test_no_module_installs_the_reactor(self) -> None:
        """
        Importing every public txmsg module (but the tests) leaves
        C{twisted.internet.reactor} uninstalled, so C{twistd --reactor=...}
        and users' own reactor choice keep working.  (Private modules that
        wrap pika or txredisapi, which install the reactor when imported,
        may only be imported lazily, from inside functions; if a public
        module imported one at module level, this test would catch it.)
        """
        code = (
            "import importlib, pkgutil, sys, txmsg\n"
            "for m in pkgutil.walk_packages(txmsg.__path__, 'txmsg.'):\n"
            "    private = any(part.startswith('_') for part in m.name.split('.'))\n"
            "    if '.test' not in m.name and not private:\n"
            "        importlib.import_module(m.name)\n"
            "        if 'twisted.internet.reactor' in sys.modules:\n"
            "            print(m.name)\n"
            "            break\n"
            "print('ok')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(out.stdout.strip(), "ok", out.stdout + out.stderr)


class WheelTests(SynchronousTestCase):
    """
    The built wheel.
    """

    def test_wheel_contents(self) -> None:
        """
        The wheel holds C{twisted/plugins/txmsg_plugins.py} and the
        C{txmsg/py.typed} marker (so users' type checkers read txmsg's
        annotations), no C{twisted/__init__.py} or
        C{twisted/plugins/__init__.py}, no top-level C{tests} package, no
        plugin cache, and the C{LICENSE} file in its metadata.
        """
        out = tempfile.mkdtemp()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                out,
                ROOT,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        [wheel] = [f for f in os.listdir(out) if f.endswith(".whl")]
        names = set(zipfile.ZipFile(os.path.join(out, wheel)).namelist())
        self.assertIn("twisted/plugins/txmsg_plugins.py", names)
        self.assertIn("txmsg/echo/__init__.py", names)
        self.assertIn("txmsg/echo/_server.py", names)
        self.assertIn("txmsg/py.typed", names)
        # the dashboard serves its CSS and script from the installed package
        self.assertIn("txmsg/ops/dashboard/static/dashboard.js", names)
        self.assertIn("txmsg/ops/dashboard/static/dashboard.css", names)
        for forbidden in ["twisted/__init__.py", "twisted/plugins/__init__.py"]:
            self.assertNotIn(forbidden, names)
        self.assertEqual(
            [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))], []
        )
        self.assertEqual([n for n in names if "dropin.cache" in n], [])
        licenses = [n for n in names if ".dist-info/" in n and n.endswith("LICENSE")]
        self.assertEqual(len(licenses), 1, sorted(names))
        with zipfile.ZipFile(os.path.join(out, wheel)) as z:
            self.assertIn(b"MIT License", z.read(licenses[0]))

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Every Python block in README.md and docs/*.md runs as written, against the
real Redis and RabbitMQ, so the documentation cannot drift from the code.

A block is a complete program unless an HTML comment on the line(s) just
before its fence says otherwise:

  - C{<!-- fragment -->}: it continues the block before it (not run; it must
    parse, with top-level C{await} allowed, and follow another block);
  - C{<!-- module: NAME.py -->}: a module that later blocks of the same page
    import (or a twistd worker loads); it is written to NAME.py in the
    program's directory, and run once on its own to check that it imports;
  - C{<!-- excerpt: PATH -->}: its lines appear, in order, in PATH (a file of
    the repository that another test runs);
  - C{<!-- trial -->}: a test module; it runs under trial and must pass;
  - C{<!-- worker: ARGS -->}: before the block runs, the test starts
    C{twistd -n txmsg-worker ARGS} (with a health endpoint, ready when
    C{/ready} answers 200) and stops it with SIGTERM afterwards.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.trial.unittest import SynchronousTestCase

from tests._process import TwistdProcess, free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)
TIMEOUT = 90
MARKERS = {"fragment", "module", "excerpt", "trial", "worker"}

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_MARKER = re.compile(r"^<!--\s*([a-z]+)(?::\s*(.*?))?\s*-->$")


@dataclass
class Block:
    """
    One fenced Python block of a page.
    """

    page: str
    line: int
    code: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "{}:{}".format(self.page, self.line)


def parse(page: str, text: str) -> list[Block]:
    """
    The Python blocks of C{text} (the contents of C{page}), with the markers
    on the lines just before each fence.
    """
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").split("\n")
        markers: dict[str, str] = {}
        while before and _MARKER.match(before[-1].strip()):
            name, value = _MARKER.match(before.pop().strip()).groups()  # type: ignore[union-attr]
            if name not in MARKERS:
                raise ValueError("{}: unknown marker <!-- {} -->".format(page, name))
            markers[name] = value or ""
        line = text[: match.start()].count("\n") + 2
        found.append(Block(page, line, match.group(1), markers))
    return found


def page_blocks(page: str) -> list[Block]:
    """
    The Python blocks of the page at C{page} (relative to the repository).
    """
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return parse(page, f.read())


def is_subsequence(lines: list[str], of: list[str]) -> bool:
    """
    Whether C{lines} appear in C{of} in the same order (not necessarily
    next to each other).
    """
    remaining = iter(of)
    return all(any(line == other for other in remaining) for line in lines)


def environment(directory: str) -> dict[str, str]:
    """
    The environment of a documented program: its own directory and this
    tree first on the path.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([directory, ROOT, env.get("PYTHONPATH", "")])
    return env


def write_modules(block: Block, directory: str) -> None:
    """
    Write every C{module} block of C{block}'s page that comes before it into
    C{directory}, with the C{__init__.py} files their packages need.
    """
    for other in page_blocks(block.page):
        if other.line >= block.line:
            break
        name = other.markers.get("module")
        if name:
            path = os.path.join(directory, name)
            parent = os.path.dirname(path)
            os.makedirs(parent, exist_ok=True)
            while parent != directory:
                open(os.path.join(parent, "__init__.py"), "a").close()
                parent = os.path.dirname(parent)
            with open(path, "w", encoding="utf-8") as f:
                f.write(other.code)


def run(argv: list[str], directory: str) -> subprocess.CompletedProcess[str]:
    """
    Run C{argv} in C{directory} with a timeout.
    """
    return subprocess.run(
        argv,
        cwd=directory,
        env=environment(directory),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def start_worker(args: str, directory: str) -> TwistdProcess:
    """
    Start C{twistd -n txmsg-worker ARGS} and wait until its C{/ready} says
    200.
    """
    port = free_port()
    worker = TwistdProcess(
        "txmsg-worker",
        shlex.split(args) + ["--health", "tcp:{}:interface=127.0.0.1".format(port)],
        ready="",
        env=environment(directory),
    )
    worker.start()

    def ready() -> bool:
        if worker.process is not None and worker.process.poll() is not None:
            raise AssertionError("the worker exited:\n" + worker.log())
        try:
            url = "http://127.0.0.1:{}/ready".format(port)
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    wait_for(ready, 60, "the worker's /ready")
    return worker


class ParseTests(SynchronousTestCase):
    """
    L{parse} and L{is_subsequence}.
    """

    def test_markers(self) -> None:
        """
        Markers on the lines just before a fence belong to that block; a
        block without any is a program; line numbers are the first code
        line's.
        """
        text = (
            "Intro\n\n```python\nprint(1)\n```\n\n<!-- module: pkg/m.py -->\n"
            "<!-- fragment -->\n```python\nx = 1\n```\n```sh\nls\n```\n"
        )
        [first, second] = parse("p.md", text)
        self.assertEqual((first.line, first.code, first.markers), (4, "print(1)\n", {}))
        self.assertEqual(second.markers, {"module": "pkg/m.py", "fragment": ""})
        self.assertEqual(second.line, 10)

    def test_unknown_marker(self) -> None:
        """
        A misspelt marker is an error, not a silently ignored block.
        """
        self.assertRaises(ValueError, parse, "p.md", "<!-- fragmnet -->\n```python\nx\n```\n")

    def test_subsequence(self) -> None:
        """
        Lines must appear in order; gaps are allowed.
        """
        self.assertTrue(is_subsequence(["a", "c"], ["a", "b", "c"]))
        self.assertFalse(is_subsequence(["c", "a"], ["a", "b", "c"]))
        self.assertFalse(is_subsequence(["d"], ["a"]))

    def test_pages_have_blocks(self) -> None:
        """
        The pages hold Python blocks, and most of them are run (so the
        generated tests below cannot pass by checking nothing).
        """
        blocks = [b for page in PAGES for b in page_blocks(page)]
        programs = [b for b in blocks if not {"fragment", "excerpt"} & set(b.markers)]
        self.assertGreater(len(blocks), 30)
        self.assertGreater(len(programs), len(blocks) // 2)


class DocsExamplesTests(SynchronousTestCase):
    """
    One test per Python block of README.md and docs/*.md (added below).
    """

    def check(self, block: Block) -> None:
        """
        Check C{block} as its markers say.
        """
        markers = block.markers
        if "fragment" in markers:
            self.check_fragment(block)
        elif "excerpt" in markers:
            self.check_excerpt(block)
        else:
            self.run_block(block)

    def check_fragment(self, block: Block) -> None:
        blocks = page_blocks(block.page)
        self.assertIsNot(blocks[0].line, block.line, "a fragment must follow another block")
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST
        compile(block.code, block.label, "exec", flags=flags)

    def check_excerpt(self, block: Block) -> None:
        with open(os.path.join(ROOT, block.markers["excerpt"]), encoding="utf-8") as f:
            source = [line.rstrip() for line in f.read().split("\n")]
        lines = [line.rstrip() for line in block.code.split("\n") if line.strip()]
        self.assertTrue(
            is_subsequence(lines, source),
            "{} is not an excerpt of {}".format(block.label, block.markers["excerpt"]),
        )

    def run_block(self, block: Block) -> None:
        directory = tempfile.mkdtemp(prefix="txmsg-docs-")
        self.addCleanup(subprocess.run, ["rm", "-rf", directory], check=False)
        write_modules(block, directory)
        if "worker" in block.markers:
            worker = start_worker(block.markers["worker"], directory)
            self.addCleanup(worker.cleanup)
        if "trial" in block.markers:
            with open(os.path.join(directory, "test_docs_block.py"), "w") as f:
                f.write(block.code)
            argv = [sys.executable, "-m", "twisted.trial", "test_docs_block"]
            expect = "PASSED"
        else:
            with open(os.path.join(directory, "docs_block.py"), "w") as f:
                f.write(block.code)
            argv = [sys.executable, "docs_block.py"]
            expect = ""
        result = run(argv, directory)
        output = "{} exited with {}:\n{}{}".format(
            block.label, result.returncode, result.stdout, result.stderr
        )
        self.assertEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", result.stdout + result.stderr, output)
        self.assertIn(expect, result.stdout + result.stderr, output)
        if "worker" in block.markers:
            status = worker.terminate()
            worker.assert_clean_stop(status)


def _make_test(block: Block) -> Callable[[DocsExamplesTests], None]:
    def test(self: DocsExamplesTests) -> None:
        self.check(block)

    kind = ", ".join(sorted(block.markers)) or "program"
    test.__doc__ = "The Python block at {} ({}) checks out.".format(block.label, kind)
    return test


for _page in PAGES:
    for _block in page_blocks(_page):
        _name = "test_{}_{}".format(re.sub(r"\W", "_", _page[:-3]), _block.line)
        setattr(DocsExamplesTests, _name, _make_test(_block))

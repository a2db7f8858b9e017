# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Task handles are typed: mypy, run on small programs that use them, accepts
correct calls and flags wrong arguments and wrong result types.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = """
from txmsg.worker import Signature, TaskCatalog, TaskRef

tasks = TaskCatalog()


@tasks.task
def add(a: int, b: int) -> int:
    return a + b


@tasks.task(max_retries=2, retry_for=(OSError,))
async def fetch(url: str, *, retries: int = 0) -> bytes:
    return url.encode()
"""

GOOD = """
async def main() -> None:
    direct: int = add(1, 2)
    ref: TaskRef[int] = await add.send(1, 2)
    total: int = await ref.result(timeout=5)
    called: int = await add.call(1, b=2)
    page: bytes = await fetch.call("http://example.com", retries=1)
    coroutine_result: bytes = await fetch("http://example.com")
    sig: Signature[int] = add.s(1, 2)
    later: TaskRef[int] = await sig.send(countdown=5, priority=3)
"""

BAD = """
async def main() -> None:
    await add.send(1, "x")
    add.s(1)
    await fetch.call(3)
    text: str = await add.call(1, 2)
    await fetch.send("u", retry=1)
"""


def mypy(source: str) -> tuple[int, str]:
    """
    Run mypy (strict, errors only for the program) on C{source}; return the
    exit status and output.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "program.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(PRELUDE) + textwrap.dedent(source))
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--follow-imports=silent",
                "--no-incremental",
                "--config-file=",
                "--python-version=3.10",
                path,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return process.returncode, process.stdout.replace(path, "program.py")


class HandleTypingTests(TestCase):
    """
    mypy on programs that use task handles.
    """

    timeout = 600

    def test_correct_program(self) -> None:
        """
        Calls that fit the function's parameters, and results used as the
        function's return type, pass.
        """
        status, output = mypy(GOOD)
        self.assertEqual((status, output.strip()), (0, "Success: no issues found in 1 source file"))

    def test_wrong_arguments_flagged(self) -> None:
        """
        Wrong argument types, missing arguments, unknown keywords and a
        result used as the wrong type are each an error on their line.
        """
        status, output = mypy(BAD)
        self.assertEqual(status, 1, output)
        first = len(textwrap.dedent(PRELUDE).splitlines()) + 3
        expected = [
            (
                first,
                'Argument 2 to "send" of "TaskHandle" has incompatible type "str"; expected "int"',
            ),
            (first + 1, 'Missing positional argument "b" in call to "s" of "TaskHandle"'),
            (
                first + 2,
                'Argument 1 to "call" of "TaskHandle" has incompatible type "int"; expected "str"',
            ),
            (
                first + 3,
                'Incompatible types in assignment (expression has type "int", variable has type "str")',
            ),
            (first + 4, 'Unexpected keyword argument "retry" for "send" of "TaskHandle"'),
        ]
        for line, message in expected:
            self.assertIn("program.py:{}: error: {}".format(line, message), output)

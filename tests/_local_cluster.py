# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A local cluster started by one of the scripts (scripts/rabbitmq-cluster.sh,
scripts/redis-sentinel.sh) in a temporary directory, with the variables of
the env file it writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LocalCluster:
    """C{scripts/<script> up|down|... DIR}, DIR a fresh temporary directory."""

    def __init__(self, script: str) -> None:
        self.script = os.path.join(ROOT, "scripts", script)
        self.dir = tempfile.mkdtemp(prefix="txmsg-" + script.split(".")[0] + "-")
        self.env: dict[str, str] = {}

    def run(self, *args: str, timeout: float = 300) -> str:
        """Run the script with C{args} and this cluster's directory."""
        r = subprocess.run(
            [self.script, *args, self.dir], capture_output=True, text=True, timeout=timeout
        )
        if r.returncode != 0:
            name = os.path.basename(self.script)
            raise AssertionError(f"{name} {args} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def up(self) -> None:
        """Start it and read its env file."""
        self.run("up")
        with open(os.path.join(self.dir, "env")) as f:
            for line in f:
                key, eq, value = line.strip().partition("=")
                if eq:
                    self.env[key] = value.strip("'")

    def down(self) -> None:
        """Stop everything and remove the directory."""
        try:
            self.run("down")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

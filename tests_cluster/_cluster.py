# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The private RabbitMQ cluster of scripts/rabbitmq-cluster.sh, driven from
tests: start, stop and restart nodes, ask where a quorum queue's leader is.
"""

from __future__ import annotations

import json
import os
import subprocess

from tests._local_cluster import LocalCluster

CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


class RabbitCluster(LocalCluster):
    """Three nodes on loopback in a temporary directory."""

    def __init__(self) -> None:
        super().__init__("rabbitmq-cluster.sh")

    def url(self, n: int) -> str:
        """The AMQP URL of node C{n} (1, 2 or 3)."""
        return "amqp://guest:guest@127.0.0.1:{}/%2F".format(self.env[f"AMQP_PORT{n}"])

    def urls(self, first: int) -> str:
        """All three URLs, node C{first} first."""
        order = [first] + [n for n in (1, 2, 3) if n != first]
        return ",".join(self.url(n) for n in order)

    def node_number(self, node: str) -> int:
        """1, 2 or 3 for an Erlang node name."""
        for n in (1, 2, 3):
            if self.env[f"NODE{n}"] == node:
                return n
        raise AssertionError(f"unknown node {node!r}")

    def ctl(self, n: int, *args: str) -> str:
        """rabbitmqctl against node C{n}."""
        environ = dict(os.environ, HOME=os.path.join(self.dir, "home"))
        r = subprocess.run(
            [CTL, "-n", self.env[f"NODE{n}"], *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=environ,
        )
        if r.returncode != 0:
            raise AssertionError(f"rabbitmqctl {args} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def queues(self, n: int = 1) -> dict[str, dict]:
        """name -> {type, leader, messages, arguments} as node C{n} sees them."""
        out = self.ctl(
            n,
            "list_queues",
            "name",
            "type",
            "leader",
            "messages",
            "arguments",
            "--formatter",
            "json",
        )
        return {q["name"]: q for q in json.loads(out)}

    def leader(self, queue: str, n: int = 1) -> int:
        """The node number of C{queue}'s leader."""
        return self.node_number(self.queues(n)[queue]["leader"])

# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Helpers for the operations integration tests: HTTP probes and scrapes with
urllib, task submission with pika's BlockingConnection, twistd plugins run
from this checkout.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests._amqp_support import blocking, env
from tests._process import TwistdProcess, free_port

__all__ = ["get", "metrics", "run_plugin", "submit", "wait_until"]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """
    GET C{url}: the status code and body (also for 4xx/5xx answers).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(base: str) -> dict[tuple[str, frozenset], float]:
    """
    Scrape C{base}/metrics: (sample name, frozenset of label items) -> value.
    """
    code, body = get(base + "/metrics")
    if code != 200:
        raise AssertionError(f"/metrics answered {code}: {body[:200]!r}")
    samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """
    One sample's value, 0 when absent.
    """
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """
    Poll C{predicate} until it returns something true (returned); fail
    after C{timeout} with C{what} and the last value.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError as e:  # not listening yet, connection reset...
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def submit(url: str, queue: str, task: str, *args: Any) -> str:
    """
    Publish one v1 JSON task to C{queue} with an independent client.
    """
    import pika

    task_id = uuid.uuid4().hex
    conn = blocking(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "",
            queue,
            json.dumps({"task": task, "args": list(args), "kwargs": {}, "id": task_id}),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=task_id
            ),
        )
    finally:
        conn.close()
    return task_id


def run_plugin(plugin: str, args: list[str], log_format: str = "text") -> tuple[TwistdProcess, str]:
    """
    Start C{twistd -n PLUGIN --health ... ARGS} from this checkout; return
    the process and the health base URL once it listens.
    """
    port = free_port()
    process = TwistdProcess(
        plugin,
        ["--health", f"tcp:{port}", "--log-format", log_format] + args,
        ready="health endpoint listening on",
        env=env(),
    )
    process.start()
    return process, f"http://127.0.0.1:{port}"

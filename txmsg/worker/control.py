# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's control commands (RQ-compatible, over Redis pub/sub:
L{txmsg.redis.control}) and its status report.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

if TYPE_CHECKING:  # a type only: service.py imports this module
    from txmsg.worker.service import WorkerService

__all__ = ["WorkerControl"]


class WorkerControl:
    """
    Answer control commands for one L{WorkerService}.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(self, worker: WorkerService, on_shutdown: Callable[[], Any] | None = None) -> None:
        self.worker = worker
        self.on_shutdown = on_shutdown

    def handlers(self) -> dict[str, Callable[[Any], dict[str, Any]]]:
        """
        The command handlers, by command name.
        """
        return {
            "shutdown": self.shutdown,
            "stop-job": self.stop_job,
            "stop-execution": self.stop_job,
            "kill-horse": self.kill_horse,
            "pause": self.pause,
            "resume": self.resume,
        }

    def status(self) -> dict[str, Any]:
        """
        What the worker is doing: the C{status} command's reply and the
        worker-registry entry.
        """
        worker = self.worker
        stats = worker.stats
        now = worker.clock.seconds()
        return {
            "name": worker.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": worker.state,
            "queues": worker.queues,
            # Queues consumed on a transactional channel (RabbitMQ).
            "transactional": sorted(
                q for q, c in worker.consumers.items() if getattr(c, "transactional", False)
            ),
            "tasks": worker.tasks.names(),
            "running": [
                {
                    "id": c.task.id,
                    "task": c.task.name,
                    "attempt": c.attempt,
                    "seconds": round(now - stats.started_at.get(c.task.id, now), 3),
                }
                for c in worker.running_tasks.values()
            ],
            "counts": stats.counts(),
            "uptime": round(stats.uptime(), 3),
            "time": time.time(),
        }

    def shutdown(self, command: Any) -> dict[str, Any]:
        """
        Stop the worker (as SIGTERM does), on the next reactor turn.
        """
        self.log.info("Shutdown requested over the control channel")
        self.worker.clock.callLater(0, self.on_shutdown or self.worker.stopService)
        return {"stopping": True, "running": len(self.worker.running_tasks)}

    def stop_job(self, command: Any) -> dict[str, Any]:
        """
        Cancel the running task C{job_id}: it is dead-lettered, not retried.
        """
        job_id = command.args.get("job_id")
        context = self.worker.running_tasks.get(job_id)
        cancelled = context.cancel("stop-job") if context is not None else False
        self.log.info(
            "stop-job {id}: {result}", id=job_id, result="cancelled" if cancelled else "not running"
        )
        return {"job_id": job_id, "cancelled": cancelled}

    def kill_horse(self, command: Any) -> dict[str, Any]:
        """
        Cancel every running task.
        """
        running = list(self.worker.running_tasks.values())
        cancelled = [c.task.id for c in running if c.cancel("kill-horse")]
        self.log.info("kill-horse: cancelled {n} task(s)", n=len(cancelled))
        return {"cancelled": cancelled}

    def pause(self, command: Any) -> dict[str, Any]:
        """
        Stop consuming (running tasks go on).
        """
        if self.worker.state == "running":
            self.worker.pause()
            self.log.info("Paused: consuming nothing until resumed")
        return {"state": self.worker.state}

    def resume(self, command: Any) -> dict[str, Any]:
        """
        Consume again after L{pause}.
        """
        if self.worker.state == "paused":
            self.worker.resume()
            self.log.info("Resumed")
        return {"state": self.worker.state}

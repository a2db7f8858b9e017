# -*- test-case-name: txmsg.test.test_worker_service -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Idempotency keys: an idempotent task runs at most once per task id, even
when its message is delivered twice.  The first run claims the id in Redis
(C{SET NX} with a TTL); a failed run gives it back so that the retry can run.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

__all__ = ["IdempotencyKeys", "idempotency_key"]


def idempotency_key(task_id: str) -> str:
    """
    The Redis key claiming task C{task_id}.
    """
    return "txmsg:task-ran:" + task_id


class IdempotencyKeys:
    """
    Claim and release task ids in Redis; without Redis every claim succeeds.

    @ivar redis: a L{txmsg.redis.RedisService}, or L{None}.
    @ivar ttl: seconds a claim lasts.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(self, redis: Any, owner: str, ttl: int = 86400) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl = ttl

    async def claim(self, task_id: str) -> bool:
        """
        Claim C{task_id}: whether this run may go ahead.

        @raise Exception: what Redis raised (the caller retries later).
        """
        if self.redis is None:
            return True
        claimed = await self.redis.handler.set(
            idempotency_key(task_id), self.owner, expire=self.ttl, only_if_not_exists=True
        )
        return claimed is not None

    async def release(self, task_id: str) -> None:
        """
        Give C{task_id} back after a failed run (a failure to do so is logged).
        """
        if self.redis is None:
            return
        try:
            await self.redis.handler.delete(idempotency_key(task_id))
        except Exception:
            self.log.failure("Releasing the idempotency key of {id} failed", id=task_id)

# -*- test-case-name: txmsg.test.test_contract_results -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The result store's contract: what L{txmsg.worker.results.RedisResultStore}
does must hold on L{txmsg.testing.MemoryRedis} and on a real Redis alike
(states, the lifecycle's guard in the script, TTLs, pushed waits, revokes).

A concrete test case provides C{make_redis()} (a started
L{txmsg.redis.RedisService}) and C{forget_prefix(p)} (delete keys starting
with C{p} after the test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from txmsg.test._contract_base import ContractCase, contract
from txmsg.worker.results import RedisResultStore, ResultTimeout, result_key
from txmsg.worker.states import FAILED, PENDING, REVOKED, STARTED, SUCCEEDED


class ResultStoreContract(ContractCase):
    """Observable behaviour of the result store."""

    if TYPE_CHECKING:  # provided by each runner's test case

        def make_redis(self) -> Any: ...
        def forget_prefix(self, prefix: str) -> None: ...

    async def store(self) -> tuple[RedisResultStore, str]:
        redis = self.make_redis()
        await self.wait(redis.when_connected(10))
        ns = self.unique("txmsg-contract-results")
        self.forget_prefix("txmsg:{" + ns)
        return RedisResultStore(redis, ttl=30, revoke_ttl=5, clock=self.clock), ns

    @contract
    async def test_results_record_and_read(self) -> None:
        """States read back with their fields; a terminal status stays."""
        store, ns = await self.store()
        task_id = ns + "-a"
        self.assertIsNone(await self.wait(store.status(task_id)))
        self.assertEqual(await self.wait(store.pending(task_id, "add")), PENDING)
        self.assertEqual(await self.wait(store.record(task_id, STARTED, attempts=1)), STARTED)
        done = store.record(task_id, SUCCEEDED, result={"n": [1, "x"]}, worker="w")
        self.assertEqual(await self.wait(done), SUCCEEDED)
        self.assertEqual(await self.wait(store.record(task_id, STARTED)), SUCCEEDED)
        state = await self.wait(store.status(task_id))
        self.assertEqual(
            (state.status, state.task, state.result, state.attempts, state.worker),
            (SUCCEEDED, "add", {"n": [1, "x"]}, 1, "w"),
        )
        ttl = await self.wait(store.redis.handler.execute_command("TTL", result_key(task_id)))
        self.assertTrue(0 < ttl <= 30, ttl)

    @contract
    async def test_results_wait_pushed(self) -> None:
        """A waiter gets a result recorded after it subscribed; a finished one at once."""
        store, ns = await self.store()
        task_id = ns + "-w"
        waiting = store.wait(task_id, 10)
        await self.sleep(0.2)
        self.assertFalse(waiting.called)
        await self.wait(store.record(task_id, FAILED, error_type="E", error_message="m"))
        state = await self.wait(waiting)
        self.assertEqual((state.status, state.error_type), (FAILED, "E"))
        again = await self.wait(store.wait(task_id, 1))
        self.assertEqual(again.status, FAILED)

    @contract
    async def test_results_wait_timeout(self) -> None:
        """A wait for a task that does not finish fails with L{ResultTimeout}."""
        store, ns = await self.store()
        error = await self.failure_of(store.wait(ns + "-t", 0.3))
        self.assertIsInstance(error, ResultTimeout)

    @contract
    async def test_results_revoke(self) -> None:
        """
        A revoke lists the id and marks a queued task, not a running one;
        the revoke is broadcast.
        """
        store, ns = await self.store()
        heard: list[Any] = []
        sub = store.redis.subscribe("txmsg:revoke", heard.append, data_only=True)
        await self.wait(sub.when_active())
        queued, running = ns + "-q", ns + "-r"
        await self.wait(store.pending(queued, "add"))
        await self.wait(store.record(running, STARTED))
        await self.wait(store.revoke(queued))
        await self.wait(store.revoke(running))
        self.assertEqual((await self.wait(store.status(queued))).status, REVOKED)
        self.assertEqual((await self.wait(store.status(running))).status, STARTED)
        revoked = await self.wait(store.revoked())
        self.assertTrue({queued, running} <= set(revoked))
        await self.eventually(lambda: {queued.encode(), running.encode()} <= set(heard))
        sub.cancel()

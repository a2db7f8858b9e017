# -*- test-case-name: txmsg.test.test_worker_workflows -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The worker's side of workflows (L{txmsg.worker.workflows}): when a member
is settled, record its result and publish what comes next, before the
member is acked.

  - A member that succeeded: its result goes into its stage's hash in one
    script (L{txmsg.worker.workflow_store.DONE}); when that says the stage
    is complete, the next stage is published (or, after the last stage,
    the workflow's result recorded), each message with a deterministic
    task id and the once header, so publishing it twice runs it once.
  - A member whose id already ran (a redelivery of a member that
    succeeded, refused by its once claim): the script is asked again
    without a result, and when the stage is complete the next stage is
    published again: this is what carries a workflow on when a worker died
    between a member's result and its ack.
  - A member dead-lettered (failed for good): the workflow is marked
    failed (no later stage is published), recorded C{failed}, and its
    C{link_error} callbacks are published (deterministic ids, once).

When Redis or the broker fails on the way, the member is retried later
(its once claim given back) rather than acked without its follow-up.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.redis.lock import RELEASE_IF_HELD
from txmsg.worker._lifecycle import one_line
from txmsg.worker.brokers.interfaces import IncomingMessage
from txmsg.worker.decisions import (
    Ack,
    DeadLetter,
    Decision,
    DeliveryFacts,
    Duplicate,
    Outcome,
    Reply,
    Retry,
    Succeeded,
    delay,
)
from txmsg.worker.headers import ONCE_HEADER
from txmsg.worker.idempotency import idempotency_key
from txmsg.worker.roster import worker_key
from txmsg.worker.states import FAILED, STARTED, SUCCEEDED
from txmsg.worker.workflow_store import (
    COMPLETE,
    UNKNOWN,
    WAITING,
    load_plan,
    mark_failed,
    member_done,
)
from txmsg.worker.workflows import (
    WORKFLOW_HEADER,
    Plan,
    error_id,
    parse_member,
    publish,
    stage_messages,
)

__all__ = ["WorkflowSteps"]

#: Plans kept in memory per worker (a plan never changes once stored).
PLAN_CACHE = 64
#: Seconds between looks at a member another (live) worker claimed.
RECHECK = 5.0


class WorkflowSteps:
    """
    Carry workflows on from the members this worker settles.

    @ivar results: the L{txmsg.worker.results.RedisResultStore} (its Redis
        holds the workflow keys; its states the workflows' statuses).
    @ivar client: the L{txmsg.worker.client.TaskClient} publishing the
        next stages.
    @ivar idempotency: the worker's L{txmsg.worker.idempotency.IdempotencyKeys}.
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(
        self, results: Any, client: Any, idempotency: Any, retry_delay: float = 1.0
    ) -> None:
        self.results = results
        self.client = client
        self.idempotency = idempotency
        self.retry_delay = retry_delay
        #: Seconds before a member another worker claimed is looked at again.
        self.recheck = RECHECK
        self._plans: OrderedDict[str, Plan] = OrderedDict()

    async def _plan(self, workflow_id: str) -> Plan | None:
        plan = self._plans.get(workflow_id)
        if plan is None:
            plan = await load_plan(self.results.redis.handler, workflow_id)
            if plan is not None:
                self._plans[workflow_id] = plan
                while len(self._plans) > PLAN_CACHE:
                    self._plans.popitem(last=False)
        return plan

    async def settling(
        self,
        message: IncomingMessage,
        facts: DeliveryFacts,
        outcome: Outcome | Decision,
        decision: Decision,
    ) -> Decision:
        """
        Carry the workflow of C{message} (if it is a member) on, before
        C{decision} is settled.

        @return: C{decision}, or a L{Retry} when the follow-up could not be
            recorded or published.
        """
        raw = (message.headers or {}).get(WORKFLOW_HEADER)
        if raw is None:
            return decision
        member = parse_member(raw)
        if member is None:
            self.log.warn(
                "Ignoring a bad {header} header: {value!r}", header=WORKFLOW_HEADER, value=raw
            )
            return decision
        succeeded = isinstance(outcome, Succeeded) and isinstance(decision, (Ack, Reply))
        try:
            if succeeded:
                try:
                    result = json.dumps(getattr(outcome, "value", None))
                except (TypeError, ValueError) as e:  # a result JSON cannot carry
                    dead = DeadLetter("failed", "UnserializableResult", str(e))
                    await self._fail(message, member, facts, dead)
                    return decision
                await self._advance(message, member, result)
            elif isinstance(outcome, Duplicate):
                if await self._advance(message, member, "") == UNKNOWN:
                    return await self._unfinished(facts)
            elif isinstance(decision, DeadLetter):
                await self._fail(message, member, facts, decision)
        except Exception:
            error = one_line(Failure())
            self.log.warn(
                "Could not carry workflow {id} on from task {task}: {error}; retrying it later",
                id=member[0],
                task=facts.task_id,
                error=error,
            )
            if succeeded and facts.task_id is not None:
                await self.idempotency.release(facts.task_id)
            if isinstance(decision, DeadLetter):
                return decision  # a failure stays a failure; its errbacks are lost
            return Retry(self.retry_delay, facts.attempt, error="workflow step: " + error)
        return decision

    async def _advance(
        self, message: IncomingMessage, member: tuple[str, int, int], result: str
    ) -> str | None:
        workflow_id, stage, index = member
        plan = await self._plan(workflow_id)
        if plan is None or stage >= len(plan.stages):
            self.log.warn(
                "Workflow {id} has no stored plan (expired?); not carried on", id=workflow_id
            )
            return None
        current = plan.stages[stage]
        ttl = self.results.ttl
        reply, payload = await member_done(
            self.results.redis.handler,
            workflow_id,
            stage,
            index,
            len(current.signatures),
            result,
            ttl,
        )
        if reply == WAITING:
            if stage == 0 and payload == 1:
                await self.results.record(workflow_id, STARTED)
            return reply
        if reply != COMPLETE:
            return reply
        results = json.loads(payload)
        value = results if current.is_group else results[0]
        if stage + 1 == len(plan.stages):
            await self.results.record(
                workflow_id, SUCCEEDED, result=value, finished=self.results.now()
            )
            return reply
        await publish(self.client, stage_messages(plan, stage + 1, [value]), message.queue)
        await self.results.record(workflow_id, STARTED)
        return reply

    async def _unfinished(self, facts: DeliveryFacts) -> Decision:
        """
        A member whose id is claimed but has no result: its run is either
        still going on another worker (look again later) or was lost with
        a worker that died (its name gone from the roster): then the claim
        is taken back and the member runs again.  Either way the delivery
        waits in the broker, uncounted.
        """
        task_id = facts.task_id or ""
        handler = self.idempotency.redis.handler
        key = idempotency_key(task_id)
        owner = await handler.get(key)
        if isinstance(owner, bytes):
            owner = owner.decode("utf-8", "replace")
        if owner is not None and owner != self.idempotency.owner:
            if not await handler.exists(worker_key(owner)):
                await RELEASE_IF_HELD(handler, [key], [owner])
                self.log.info(
                    "Workflow task {id} was claimed by worker {owner}, which is gone: "
                    "running it again",
                    id=task_id,
                    owner=owner,
                )
                return delay(facts, 0.0)
        return delay(facts, self.recheck)

    async def _fail(
        self,
        message: IncomingMessage,
        member: tuple[str, int, int],
        facts: DeliveryFacts,
        dead: DeadLetter,
    ) -> None:
        workflow_id = member[0]
        plan = await self._plan(workflow_id)
        task_id = facts.task_id or ""
        await mark_failed(self.results.redis.handler, workflow_id, task_id, self.results.ttl)
        await self.results.record(
            workflow_id,
            FAILED,
            error_type=dead.error_type or dead.reason,
            error_message="task {}: {}".format(task_id, dead.error_message or dead.reason),
            finished=self.results.now(),
        )
        if plan is None:
            return
        error = {"task_id": task_id, "error_type": dead.error_type, "message": dead.error_message}
        messages = [
            (error_id(workflow_id, i), sig, (error, *sig.args), {ONCE_HEADER: 1})
            for i, sig in enumerate(plan.link_error)
        ]
        await publish(self.client, messages, message.queue)

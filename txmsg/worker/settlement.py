# -*- test-case-name: txmsg.test.test_worker_poison -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Settlement: carry a decision out on the broker, and what to do when that
fails.

The broker provider publishes what a decision needs, with confirms, and
only then acks (L{IWorkerBroker.settle}).  When that fails (the broker
nacked a publish, the connection went away), the delivery is not acked:
L{Settlement} retries it through the broker's delay queue instead, counted
like a run, and when even that fails it gives the delivery back to the
broker only after a delay.  A failure in settling therefore never loops
hot, and the delivery cap (L{txmsg.worker.decisions.admit}) bounds how
often it can come back.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from txmsg.worker._lifecycle import one_line
from txmsg.worker.brokers.interfaces import IncomingMessage, IWorkerBroker
from txmsg.worker.decisions import Ack, Decision, DeliveryFacts, Requeue, Retry

__all__ = ["Settlement"]


class Settlement:
    """
    Settle decisions on a broker, with a delayed fallback.

    @ivar delay: seconds a delivery waits before it comes back after its
        settlement failed (a delay the broker has a queue for).
    """

    log = Logger(namespace="txmsg.worker.service")

    def __init__(self, broker: IWorkerBroker, clock: IReactorTime, delay: float) -> None:
        self.broker = broker
        self.clock = clock
        self.delay = delay

    async def settle(
        self, message: IncomingMessage, facts: DeliveryFacts, decision: Decision
    ) -> Any:
        """
        Carry C{decision} out, falling back as the module says.  Only the
        last resort (giving the delivery back) can fail, when the connection
        is gone; the broker then requeues the unacked delivery itself.

        @return: what the broker's consumer applies to the delivery.
        """
        try:
            return await self.broker.settle(message, decision)
        except Exception:
            error = one_line(Failure())
        if isinstance(decision, Requeue) and not decision.counted:
            # Only ever at a stop, never in a loop: no need to wait.
            self.log.warn(
                "Could not hand back delivery of {queue} uncounted ({error}); "
                "giving it back to the broker as it is",
                queue=message.queue,
                error=error,
            )
            return await self.broker.settle(message, Requeue())
        fallback = Retry(self.delay, facts.attempt, error=error)
        if not isinstance(decision, (Ack, Requeue)):
            self.log.warn(
                "Could not settle delivery of {queue} ({decision}): {error}; "
                "retrying it in {delay}s",
                queue=message.queue,
                decision=type(decision).__name__,
                error=error,
                delay=self.delay,
            )
            try:
                return await self.broker.settle(message, fallback)
            except Exception:
                error = one_line(Failure())
        self.log.warn(
            "Could not settle delivery of {queue}: {error}; giving it back to the broker "
            "in {delay}s",
            queue=message.queue,
            error=error,
            delay=self.delay,
        )
        await deferLater(self.clock, self.delay, lambda: None)
        return await self.broker.settle(message, Requeue())

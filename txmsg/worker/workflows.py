# -*- test-case-name: txmsg.test.test_worker_workflows -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
Workflows: L{chain}, L{group} and L{chord} of task signatures.

    ref = await chain(fetch.s(url), parse.s(), store.s()).send(client)
    ref = await group(square.s(i) for i in range(100)).send(client)
    ref = await chord(group(square.s(i) for i in range(100)), total.s()).send(client)
    await ref.result(timeout=60)      # the last step's result (a list for a group)

A workflow is a list of I{stages} (L{Plan}): a chain's links one by one, a
group's members all at once, a chord's group and then its callback.  Each
stage after the first gets the previous stage's result I{prepended} to its
own arguments (C{parse.s()} runs as C{parse(fetched)}; a chord's callback
gets the list of the group's results, in the group's order).

The plan is stored in Redis; the first stage is published; every member
carries the header L{WORKFLOW_HEADER} (C{"<workflow id>/<stage>/<index>"}),
and the worker that settles a member records its result and, when the
stage is complete, publishes the next stage I{before} it acks
(L{txmsg.worker.workflow_steps}).  The overall state is recorded in the
results store under the workflow id, so the reference returned is a plain
L{txmsg.worker.handles.TaskRef}.

This module is pure apart from L{send_workflow}: building and planning do
no I/O.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults

from txmsg.worker.handles import NoResultStore, TaskRef
from txmsg.worker.headers import ONCE_HEADER
from txmsg.worker.signature import Signature, find_client

__all__ = [
    "WORKFLOW_HEADER",
    "Chain",
    "Chord",
    "Group",
    "Plan",
    "Stage",
    "chain",
    "chord",
    "error_id",
    "group",
    "member_id",
    "parse_member",
    "send_workflow",
]

#: The header naming a message's place in a workflow:
#: C{"<workflow id>/<stage>/<index>"}.
WORKFLOW_HEADER = "x-txmsg-workflow"
#: The task name a workflow's own state is recorded under.
WORKFLOW_TASK = "workflow"

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_MEMBER = re.compile(r"^([A-Za-z0-9_.:-]{1,200})/(\d{1,6})/(\d{1,7})$")


@dataclass(frozen=True)
class Group:
    """Signatures run at once; the result is the list of theirs, in order."""

    members: tuple[Signature[Any], ...]
    link_error: tuple[Signature[Any], ...] = ()

    def send(self, client: Any = None, **kw: Any) -> Deferred[TaskRef[list[Any]]]:
        """Send it (see L{send_workflow})."""
        return send_workflow(self, client, **kw)


@dataclass(frozen=True)
class Chain:
    """Steps run one after the other, each given the previous result."""

    steps: tuple[Signature[Any] | Group, ...]
    link_error: tuple[Signature[Any], ...] = ()

    def send(self, client: Any = None, **kw: Any) -> Deferred[TaskRef[Any]]:
        """Send it (see L{send_workflow})."""
        return send_workflow(self, client, **kw)


@dataclass(frozen=True)
class Chord:
    """A group, then C{callback} with the list of the group's results."""

    header: Group
    callback: Signature[Any]
    link_error: tuple[Signature[Any], ...] = ()

    def send(self, client: Any = None, **kw: Any) -> Deferred[TaskRef[Any]]:
        """Send it (see L{send_workflow})."""
        return send_workflow(self, client, **kw)


Workflow = Chain | Group | Chord


def _errbacks(link_error: Signature[Any] | Iterable[Signature[Any]] | None) -> tuple[Any, ...]:
    if link_error is None:
        return ()
    items = (link_error,) if isinstance(link_error, Signature) else tuple(link_error)
    for item in items:
        if not isinstance(item, Signature):
            raise TypeError("link_error takes signatures, not {!r}".format(item))
    return items


def group(members: Iterable[Signature[Any]], *, link_error: Any = None) -> Group:
    """
    A group of signatures (any iterable, e.g. a generator expression).

    @param link_error: signature(s) sent once when a member fails.
    @raise TypeError: for a member that is not a signature.
    @raise ValueError: for an empty group.
    """
    items = tuple(members)
    for item in items:
        if not isinstance(item, Signature):
            raise TypeError("a group holds signatures (task.s(...)), not {!r}".format(item))
    if not items:
        raise ValueError("a group needs at least one signature")
    return Group(items, _errbacks(link_error))


def chain(*steps: Signature[Any] | Group | Chain | Chord, link_error: Any = None) -> Chain:
    """
    Steps one after the other: signatures, groups, chains and chords
    (flattened into one sequence of stages).

    @param link_error: signature(s) sent once when a step fails.
    """
    flat: list[Signature[Any] | Group] = []
    errbacks = list(_errbacks(link_error))
    for step in steps:
        if isinstance(step, Chain):
            flat.extend(step.steps)
            errbacks.extend(step.link_error)
        elif isinstance(step, Chord):
            flat.extend([step.header, step.callback])
            errbacks.extend(step.link_error + step.header.link_error)
        elif isinstance(step, Group):
            flat.append(step)
            errbacks.extend(step.link_error)
        elif isinstance(step, Signature):
            flat.append(step)
        else:
            raise TypeError("a chain holds signatures, groups and chords, not {!r}".format(step))
    if not flat:
        raise ValueError("a chain needs at least one step")
    return Chain(tuple(flat), tuple(errbacks))


def chord(
    header: Group | Iterable[Signature[Any]], callback: Signature[Any], *, link_error: Any = None
) -> Chord:
    """
    C{header}'s members at once, then C{callback(results)} exactly once,
    when all have succeeded.

    @param link_error: signature(s) sent once when a member or the
        callback fails (the callback then does not run).
    """
    if not isinstance(header, Group):
        header = group(header)
    if not isinstance(callback, Signature):
        raise TypeError("a chord's callback is a signature, not {!r}".format(callback))
    return Chord(header, callback, _errbacks(link_error))


@dataclass(frozen=True)
class Stage:
    """
    One stage of a plan: its signatures, and whether it is a group (its
    result is the list of its members' results) or a single task.
    """

    signatures: tuple[Signature[Any], ...]
    is_group: bool = False


@dataclass(frozen=True)
class Plan:
    """A workflow as the worker follows it: stages and error callbacks."""

    id: str
    stages: tuple[Stage, ...]
    link_error: tuple[Signature[Any], ...] = field(default=())

    @classmethod
    def of(cls, workflow: Workflow, workflow_id: str) -> Plan:
        """The plan of C{workflow}."""
        if not _ID.match(workflow_id):
            raise ValueError("a workflow id is 1-200 of A-Z a-z 0-9 _ . : -")
        flat = chain(workflow)
        stages = tuple(
            Stage(step.members, True) if isinstance(step, Group) else Stage((step,))
            for step in flat.steps
        )
        return cls(workflow_id, stages, flat.link_error)

    def to_json(self) -> str:
        """The plan as JSON (what Redis stores)."""
        return json.dumps(
            {
                "id": self.id,
                "stages": [
                    {"group": s.is_group, "sigs": [sig.to_dict() for sig in s.signatures]}
                    for s in self.stages
                ],
                "link_error": [sig.to_dict() for sig in self.link_error],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        """The plan L{to_json} wrote."""
        data = json.loads(text)
        return cls(
            data["id"],
            tuple(
                Stage(tuple(Signature.from_dict(d) for d in s["sigs"]), bool(s["group"]))
                for s in data["stages"]
            ),
            tuple(Signature.from_dict(d) for d in data["link_error"]),
        )


def member_id(workflow_id: str, stage: int, index: int, is_group: bool) -> str:
    """
    The deterministic task id of a member: C{<id>:<stage>} for a single
    task, C{<id>:<stage>:<index>} for a group's member.
    """
    if is_group:
        return "{}:{}:{}".format(workflow_id, stage, index)
    return "{}:{}".format(workflow_id, stage)


def error_id(workflow_id: str, index: int) -> str:
    """The deterministic task id of the C{index}th error callback."""
    return "{}:error:{}".format(workflow_id, index)


def parse_member(value: Any) -> tuple[str, int, int] | None:
    """
    C{(workflow id, stage, index)} from a L{WORKFLOW_HEADER} value, or
    L{None} for a value no txmsg client writes.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    match = _MEMBER.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3))


def stage_messages(
    plan: Plan, stage: int, previous: Sequence[Any] = ()
) -> list[tuple[str, Signature[Any], tuple[Any, ...], dict[str, Any]]]:
    """
    The messages that start stage C{stage}: C{(task id, signature, args,
    headers)}, each signature's arguments after C{previous} (the previous
    stage's result, or nothing for the first stage).
    """
    current = plan.stages[stage]
    out = []
    for index, sig in enumerate(current.signatures):
        headers = {
            ONCE_HEADER: 1,
            WORKFLOW_HEADER: "{}/{}/{}".format(plan.id, stage, index),
        }
        task_id = member_id(plan.id, stage, index, current.is_group)
        out.append((task_id, sig, tuple(previous) + sig.args, headers))
    return out


def publish(
    client: Any, messages: Sequence[Any], default_queue: str | None = None
) -> Deferred[Any]:
    """
    Publish L{stage_messages} (or error callbacks) with C{client}
    (L{txmsg.worker.client.TaskClient}); fires once all are confirmed.
    """
    ds = [
        client.submit(
            sig.task,
            args,
            dict(sig.kwargs),
            queue=sig.options.get("queue") or default_queue,
            task_id=task_id,
            headers=headers,
        )
        for task_id, sig, args, headers in messages
    ]
    return gatherResults(ds, consumeErrors=True)


def send_workflow(
    workflow: Workflow,
    client: Any = None,
    *,
    workflow_id: str | None = None,
    queue: str | None = None,
) -> Deferred[TaskRef[Any]]:
    """
    Store C{workflow}'s plan, record it C{pending} and publish its first
    stage.

    @param client: a L{txmsg.worker.client.TaskClient} with a Redis results
        store (default: the catalog's bound client).
    @param workflow_id: the id (default: a fresh one); sending the same id
        twice runs it once.
    @param queue: the queue of members whose signature names none.
    @return: a Deferred firing with the L{TaskRef} of the workflow (its
        status; its result: the last stage's).
    @raise NoClient: without a client.
    """
    plan = Plan.of(workflow, workflow_id or uuid.uuid4().hex)
    first = plan.stages[0].signatures[0]
    sender = find_client(client, first.catalog, first.task)
    store = getattr(sender, "results", None)
    if store is None or not hasattr(store, "redis"):
        raise NoResultStore("sending a workflow")
    return ensureDeferred(_send(plan, sender, store, queue))


async def _send(plan: Plan, client: Any, store: Any, queue: str | None) -> TaskRef[Any]:
    # Imported here: workflow_store reads this module's Plan.
    from txmsg.worker.workflow_store import save_plan

    await save_plan(store.redis.handler, plan, store.ttl)
    await store.pending(plan.id, WORKFLOW_TASK)
    await publish(client, stage_messages(plan, 0), queue)
    return TaskRef(plan.id, WORKFLOW_TASK, store)

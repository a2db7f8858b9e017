# -*- test-case-name: txmsg.test.test_worker_workflows -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
A workflow's keys in Redis, and the script that counts its members.

Every key of workflow C{<id>} carries the hash tag C{{wf:<id>}}, so a
script touching several of them runs on one node of a cluster:

  - C{txmsg:{wf:<id>}:plan}: the plan (JSON, L{txmsg.worker.workflows.Plan});
  - C{txmsg:{wf:<id>}:stage:<n>}: a hash, member index -> its result (JSON);
    the stage is complete when it has as many fields as members;
  - C{txmsg:{wf:<id>}:state}: a hash; C{failed} (the id of the first
    member that failed) once the workflow failed.

All expire with the results TTL.  The workflow's overall status and result
are recorded in the results store under the workflow id.
"""

from __future__ import annotations

from typing import Any

from txmsg.redis._common import Script
from txmsg.worker.workflows import Plan

__all__ = ["COMPLETE", "DONE", "FAILED", "UNKNOWN", "WAITING", "member_done", "save_plan"]


def _key(workflow_id: str, name: str) -> str:
    return "txmsg:{wf:" + workflow_id + "}:" + name


def plan_key(workflow_id: str) -> str:
    """The key of the plan of C{workflow_id}."""
    return _key(workflow_id, "plan")


def stage_key(workflow_id: str, stage: int) -> str:
    """The hash of the results of stage C{stage}."""
    return _key(workflow_id, "stage:{}".format(stage))


def state_key(workflow_id: str) -> str:
    """The hash marking the workflow failed."""
    return _key(workflow_id, "state")


#: Replies of L{DONE}.
COMPLETE, WAITING, FAILED, UNKNOWN = "complete", "waiting", "failed", "unknown"

# KEYS: the state hash, the stage's results hash
# ARGV: member index, member count, result JSON ("" for none: a redelivered
# member that ran before and only asks), TTL seconds.
# The first result stored for an index wins (HSETNX: a member run twice
# counts once).  Returns {"failed"} when the workflow failed, {"unknown"}
# when asked about an index with no result, {"waiting", count}, or
# {"complete", "[r0,r1,...]"} (the results in member order) to every call
# once all members are in: to the last member and to any redelivered one.
DONE = Script(
    "workflows.done",
    """
if redis.call('hexists', KEYS[1], 'failed') == 1 then
  return {'failed'}
end
if ARGV[3] == '' then
  if redis.call('hexists', KEYS[2], ARGV[1]) == 0 then
    return {'unknown'}
  end
else
  redis.call('hsetnx', KEYS[2], ARGV[1], ARGV[3])
  redis.call('expire', KEYS[2], ARGV[4])
end
local n = tonumber(ARGV[2])
local count = redis.call('hlen', KEYS[2])
if count < n then
  return {'waiting', count}
end
local results = {}
for i = 0, n - 1 do
  results[#results + 1] = redis.call('hget', KEYS[2], tostring(i)) or 'null'
end
return {'complete', '[' .. table.concat(results, ',') .. ']'}
""",
)


def save_plan(handler: Any, plan: Plan, ttl: int) -> Any:
    """Store C{plan} (a Deferred); a plan already stored is kept."""
    return handler.set(plan_key(plan.id), plan.to_json(), expire=ttl, only_if_not_exists=True)


def load_plan(handler: Any, workflow_id: str) -> Any:
    """A Deferred firing with the stored L{Plan}, or L{None}."""

    def parse(text: Any) -> Plan | None:
        return None if text is None else Plan.from_json(text)

    return handler.get(plan_key(workflow_id)).addCallback(parse)


def member_done(
    handler: Any, workflow_id: str, stage: int, index: int, size: int, result: str, ttl: int
) -> Any:
    """
    Run L{DONE}: a Deferred firing with C{(reply, payload)} (C{payload}:
    the results JSON when complete).
    """
    keys = [state_key(workflow_id), stage_key(workflow_id, stage)]
    d = DONE(handler, keys, [str(index), str(size), result, str(ttl)])

    def parse(reply: Any) -> tuple[str, Any]:
        items = [x.decode("utf-8") if isinstance(x, bytes) else x for x in reply]
        return str(items[0]), items[1] if len(items) > 1 else None

    return d.addCallback(parse)


def mark_failed(handler: Any, workflow_id: str, task_id: str, ttl: int) -> Any:
    """Mark the workflow failed (the first failed member's id is kept)."""
    key = state_key(workflow_id)
    d = handler.hsetnx(key, "failed", task_id)
    return d.addCallback(lambda _: handler.expire(key, ttl))

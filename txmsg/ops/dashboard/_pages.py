# -*- test-case-name: txmsg.test.test_dashboard_resources -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The dashboard's HTML, from plain dicts (what the JSON API also returns).

Every page works without JavaScript; the small script served with them
refreshes the parts marked C{data-refresh}, draws the charts and asks for
confirmation before an action.  Links are relative to a C{<base href>}, so
the tree can be mounted under any path.  Everything is escaped.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any
from urllib.parse import quote

__all__ = [
    "confirm_page",
    "dead_letter_page",
    "layout",
    "overview_fragment",
    "schedule_page",
    "queue_fragment",
    "task_page",
]


def _q(name: str) -> str:
    return quote(name, safe="")


def _n(value: Any) -> str:
    if value is None:
        return '<span class="muted">–</span>'
    if isinstance(value, float):
        return "{:+.1f}".format(value) if value else "0"
    return escape(str(value))


def _rate(value: Any) -> str:
    return '<span class="muted">–</span>' if value is None else "{:.1f}".format(value)


def _ago(then: Any, now: float) -> str:
    if not isinstance(then, (int, float)):
        return "–"
    seconds = max(0, int(now - then))
    return "{}s ago".format(seconds) if seconds < 120 else "{}m ago".format(seconds // 60)


def layout(title: str, body: str, *, root: str, csrf: str, read_only: bool, interval: float) -> str:
    """
    A whole page around C{body}.
    """
    mode = '<span class="badge">read-only</span>' if read_only else ""
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<base href="{root}">
<title>{title} · txmsg</title>
<link rel="stylesheet" href="static/dashboard.css">
</head>
<body data-csrf="{csrf}" data-interval="{interval}">
<header><a class="brand" href="./">txmsg</a>
<nav><a href="./">Overview</a><a href="schedule">Schedule</a>
<form class="lookup" action="tasks" method="get"><input name="id" placeholder="task id" aria-label="task id"></form>
</nav>{mode}</header>
<main><h1>{title}</h1><div id="flash" role="status"></div>
{body}</main>
<script src="static/dashboard.js"></script>
</body></html>
""".format(
        root=escape(root),
        title=escape(title),
        csrf=escape(csrf),
        interval=int(interval * 1000),
        mode=mode,
        body=body,
    )


def _action(
    path: str, label: str, csrf: str, *, fields: dict[str, str] | None = None, confirm: str = ""
) -> str:
    hidden = "".join(
        '<input type="hidden" name="{}" value="{}">'.format(escape(k), escape(v))
        for k, v in (fields or {}).items()
    )
    return (
        '<form class="action" method="post" action="{}" data-confirm="{}">'
        '<input type="hidden" name="csrf" value="{}">{}'
        '<button type="submit">{}</button></form>'
    ).format(escape(path), escape(confirm), escape(csrf), hidden, escape(label))


def _status(overview: dict[str, Any], now: float) -> str:
    line = "sampled {} · every {:g}s".format(
        _ago(overview.get("sampled_at"), now), overview.get("interval", 0)
    )
    error = overview.get("error")
    if error:
        line += ' · <span class="error">{}</span>'.format(escape(error))
    return '<p class="status">{}</p>'.format(line)


def queues_table(queues: list[dict[str, Any]]) -> str:
    """
    The queues: depth, consumers, rates, dead letters.
    """
    if not queues:
        return '<p class="muted">No queues yet: start a worker, or name queues with --queue.</p>'
    rows = []
    for q in queues:
        name = q["queue"]
        missing = q.get("time") is not None and q.get("ready") is None
        rows.append(
            '<tr data-queue="{name}"><td><a href="queues/{link}">{name}</a>{missing}</td>'
            '<td class="num ready">{ready}</td><td class="num">{unacked}</td>'
            '<td class="num">{consumers}</td><td class="num">{in_rate}</td>'
            '<td class="num">{out_rate}</td><td class="num">{net}</td>'
            '<td class="num dead{hot}">{dead}</td></tr>'.format(
                hot=" hot" if q.get("dead") else "",
                name=escape(name),
                link=_q(name),
                missing=' <span class="badge">missing</span>' if missing else "",
                ready=_n(q.get("ready")),
                unacked=_n(q.get("unacked")),
                consumers=_n(q.get("consumers")),
                in_rate=_rate(q.get("in_rate")),
                out_rate=_rate(q.get("out_rate")),
                net=_rate(q.get("net_rate")),
                dead=_n(q.get("dead")),
            )
        )
    return (
        '<table class="queues"><thead><tr><th>Queue</th><th>Ready</th><th>Unacked</th>'
        "<th>Consumers</th><th>In/s</th><th>Out/s</th><th>Net/s</th><th>Dead</th>"
        "</tr></thead><tbody>{}</tbody></table>".format("".join(rows))
    )


def workers_table(workers: list[dict[str, Any]], now: float) -> str:
    """
    The workers: state, running tasks, counters, last heartbeat.
    """
    if not workers:
        return (
            '<p class="muted">No workers registered (workers register when started '
            "with --redis).</p>"
        )
    rows = []
    for w in workers:
        counts = w.get("counts") or {}
        running = w.get("running") or []
        tasks = (
            ", ".join(
                '<a href="tasks/{}">{}</a>'.format(
                    _q(str(t.get("id"))), escape("{} {}".format(t.get("task"), t.get("id")))
                )
                for t in running
                if isinstance(t, dict)
            )
            if isinstance(running, list)
            else escape(str(running))
        )
        rows.append(
            '<tr data-worker="{name}"><td>{name}</td><td><span class="state {state}">{state}'
            "</span></td><td>{queues}</td><td>{tasks}</td><td class=num>{ok}</td>"
            "<td class=num>{failed}</td><td class=num>{retried}</td><td class=num>{dead}</td>"
            "<td class=num>{uptime}</td><td>{seen}</td></tr>".format(
                name=escape(str(w.get("name"))),
                state=escape(str(w.get("state"))),
                queues=escape(", ".join(str(q) for q in w.get("queues") or [])),
                tasks=tasks or '<span class="muted">idle</span>',
                ok=_n(counts.get("succeeded", 0)),
                failed=_n(counts.get("failed", 0)),
                retried=_n(counts.get("retried", 0)),
                dead=_n(counts.get("dead_lettered", 0)),
                uptime="{:.0f}s".format(w.get("uptime") or 0),
                seen=_ago(w.get("time"), now),
            )
        )
    return (
        '<table class="workers"><thead><tr><th>Worker</th><th>State</th><th>Queues</th>'
        "<th>Running</th><th>OK</th><th>Failed</th><th>Retried</th><th>Dead</th>"
        "<th>Uptime</th><th>Heartbeat</th></tr></thead><tbody>{}</tbody></table>".format(
            "".join(rows)
        )
    )


def overview_fragment(overview: dict[str, Any], now: float | None = None) -> str:
    """
    The live part of the overview page.
    """
    now = time.time() if now is None else now
    return "{}<h2>Queues</h2>{}<h2>Workers</h2>{}".format(
        _status(overview, now),
        queues_table(overview["queues"]),
        workers_table(overview["workers"], now),
    )


def dead_letters_table(
    queue: str, total: int | None, letters: list[dict[str, Any]], csrf: str, read_only: bool
) -> str:
    """
    The dead letters of a queue, with their actions and the bulk ones.
    """
    if total is None:
        return '<p class="muted">No dead-letter queue {}.</p>'.format(escape(queue + ".dead"))
    head = "<p>{} dead letter(s) in <code>{}</code>{}</p>".format(
        total,
        escape(queue + ".dead"),
        " (showing {})".format(len(letters)) if len(letters) < total else "",
    )
    if not letters:
        return head
    base = "queues/{}/".format(_q(queue))
    rows = []
    for d in letters:
        actions = (
            ""
            if read_only
            else _action(
                base + "requeue",
                "Requeue",
                csrf,
                fields={"key": d["key"]},
                confirm="Requeue this dead letter to {}?".format(d["target"]),
            )
            + _action(
                base + "delete",
                "Delete",
                csrf,
                fields={"key": d["key"]},
                confirm="Delete this dead letter for good?",
            )
        )
        rows.append(
            '<tr data-key="{key}"><td><a href="{base}dead/{link}">{task}</a></td><td>{id}</td>'
            "<td>{reason}</td><td>{error}</td><td class=num>{attempts}</td><td>{at}</td>"
            '<td class="actions">{actions}</td></tr>'.format(
                key=escape(d["key"]),
                base=base,
                link=_q(d["key"]),
                task=escape(str(d.get("task") or "(not a task)")),
                id=escape(str(d.get("id") or "")),
                reason=escape(str(d.get("reason"))),
                error=escape(str(d.get("error"))),
                attempts=escape(str(d.get("attempts"))),
                at=escape(str(d.get("failed_at") or "")),
                actions=actions,
            )
        )
    bulk = (
        ""
        if read_only
        else '<div class="bulk">{}{}</div>'.format(
            _action(
                base + "requeue",
                "Requeue all",
                csrf,
                fields={"all": "1"},
                confirm="Requeue all {} dead letters of {}?".format(total, queue),
            ),
            _action(
                base + "purge",
                "Purge all",
                csrf,
                fields={"all": "1"},
                confirm="Delete all {} dead letters of {} for good?".format(total, queue),
            ),
        )
    )
    return (
        '{}<table class="dead-letters"><thead><tr><th>Task</th><th>Id</th><th>Reason</th>'
        "<th>Error</th><th>Attempts</th><th>Failed at</th><th></th></tr></thead>"
        "<tbody>{}</tbody></table>{}".format(head, "".join(rows), bulk)
    )


def queue_fragment(
    summary: dict[str, Any],
    total: int | None,
    letters: list[dict[str, Any]],
    csrf: str,
    read_only: bool,
) -> str:
    """
    The live part of a queue page: its figures and its dead letters.
    """
    return "{}<h2>Dead letters</h2>{}".format(
        queues_table([summary]),
        dead_letters_table(summary["queue"], total, letters, csrf, read_only),
    )


def queue_charts(queue: str) -> str:
    """
    The chart placeholders a queue page's script fills from its history.
    """
    src = "api/queues/{}/history".format(_q(queue))
    return (
        '<div class="charts"><figure><figcaption>Depth (last hour)</figcaption>'
        '<svg class="chart" data-chart="depth" data-src="{src}" viewBox="0 0 600 160" '
        'role="img" aria-label="queue depth"></svg></figure>'
        "<figure><figcaption>Throughput, messages/s (last hour)</figcaption>"
        '<svg class="chart" data-chart="rate" data-src="{src}" viewBox="0 0 600 160" '
        'role="img" aria-label="throughput"></svg></figure></div>'
    ).format(src=escape(src))


def dead_letter_page(queue: str, letter: dict[str, Any], csrf: str, read_only: bool) -> str:
    """
    One dead letter: its summary, headers and body, and its actions.
    """
    base = "queues/{}/".format(_q(queue))
    body = letter.get("body", "")
    try:
        body = json.dumps(json.loads(body), indent=2, sort_keys=True)
    except ValueError:
        pass
    fields = "".join(
        "<tr><th>{}</th><td>{}</td></tr>".format(escape(k), escape(str(letter.get(k))))
        for k in ("task", "id", "reason", "error", "attempts", "failed_at", "target", "key")
    )
    headers = "".join(
        "<tr><th>{}</th><td><code>{}</code></td></tr>".format(escape(k), escape(json.dumps(v)))
        for k, v in sorted((letter.get("headers") or {}).items())
    )
    actions = (
        ""
        if read_only
        else '<div class="bulk">{}{}</div>'.format(
            _action(
                base + "requeue",
                "Requeue",
                csrf,
                fields={"key": letter["key"], "next": "queue"},
                confirm="Requeue this dead letter to {}?".format(letter.get("target")),
            ),
            _action(
                base + "delete",
                "Delete",
                csrf,
                fields={"key": letter["key"], "next": "queue"},
                confirm="Delete this dead letter for good?",
            ),
        )
    )
    return (
        '<p><a href="{base}">← {queue}</a></p>{actions}<table class="fields">{fields}</table>'
        '<h2>Headers</h2><table class="fields">{headers}</table>'
        "<h2>Body</h2><pre>{body}</pre>"
    ).format(
        base=base,
        queue=escape(queue),
        actions=actions,
        fields=fields,
        headers=headers or '<tr><td class="muted">none</td></tr>',
        body=escape(body),
    )


def task_page(task_id: str, result: dict[str, Any] | None, available: bool) -> str:
    """
    A task by id: its status and result from the results store.
    """
    if not available:
        return (
            "<p>Task <code>{}</code>: no results store is configured, so the dashboard "
            "cannot look tasks up. Dead letters are listed on each queue's page.</p>"
        ).format(escape(task_id))
    if result is None:
        return "<p>No result recorded for task <code>{}</code> (unknown, running, or expired).</p>".format(
            escape(task_id)
        )
    rows = "".join(
        "<tr><th>{}</th><td><code>{}</code></td></tr>".format(
            escape(str(k)), escape(json.dumps(v, default=str))
        )
        for k, v in sorted(result.items())
    )
    return '<table class="fields">{}</table>'.format(rows)


def confirm_page(queue: str, action: str, csrf: str) -> str:
    """
    The confirmation of a bulk action (shown when the browser runs no
    script, which asks in a dialog instead).
    """
    what = "Requeue" if action == "requeue" else "Delete"
    return "<p>{} <strong>all</strong> dead letters of <code>{}</code>?</p>{}".format(
        what,
        escape(queue),
        _action(
            "queues/{}/{}".format(_q(queue), action),
            "Yes, {} them all".format(what.lower()),
            csrf,
            fields={"all": "1", "confirmed": "1"},
        ),
    ) + '<p><a href="queues/{}">Cancel</a></p>'.format(_q(queue))


def _stamp(when: Any) -> str:
    if not isinstance(when, (int, float)):
        return '<span class="muted">–</span>'
    return escape(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)))


def schedule_page(view: dict[str, Any] | None) -> str:
    """
    A schedule's entries with their last and next firings.
    """
    if view is None:
        return (
            "<p>No schedule is configured: start the dashboard with "
            "<code>--schedule MODULE</code> (the module given to "
            "<code>twistd txmsg-scheduler</code>) to see its entries here.</p>"
        )
    leader = view.get("leader")
    head = "<p>Schedule <code>{}</code>; {}.</p>".format(
        escape(view["name"]),
        "leader: <code>{}</code>".format(escape(leader))
        if leader
        else "no scheduler holds the lease now",
    )
    if view.get("error"):
        head += '<p class="error">{}</p>'.format(escape(view["error"]))
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            escape(e["name"]),
            escape(e["when"] + (" catch-up" if e.get("catch_up") else "")),
            escape(e["task"]),
            escape(e.get("queue") or "(default)"),
            _stamp(e.get("last")),
            _stamp(e.get("next")),
        )
        for e in view["entries"]
    )
    return (
        '{}<table class="schedule"><thead><tr><th>Entry</th><th>When</th><th>Task</th>'
        "<th>Queue</th><th>Last fired</th><th>Next</th></tr></thead><tbody>{}</tbody>"
        "</table>".format(head, rows)
    )

# -*- test-case-name: txmsg.test.test_dashboard_resources -*-
# Copyright (c) txmsg contributors. See LICENSE for details.
"""
The dashboard's C{twisted.web} resource tree, L{DashboardRoot}:

    /                              overview (queues, workers)
    /queues/Q                      a queue: charts, figures, dead letters
    /queues/Q/dead/KEY             one dead letter
    POST /queues/Q/requeue         key=KEY... or all=1
    POST /queues/Q/delete          key=KEY...
    POST /queues/Q/purge           all=1
    /tasks/ID, /tasks?id=ID        a task's result (with a results store)
    /schedule                      a schedule's entries, last and next firings
    /api/overview, /api/queues/Q, /api/queues/Q/history,
    /api/queues/Q/dead/KEY, /api/tasks/ID, /api/schedule   the same as JSON
    /fragments/overview, /fragments/queues/Q   the live parts, as HTML
    /metrics                       Prometheus: queue depth and consumers
    /static/...                    CSS and script, from the package

It can be the root of a C{Site} or a child of any resource (the worker
mounts it at C{/dashboard/} on its health port).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File

from txmsg.ops.dashboard import _pages
from txmsg.ops.dashboard._auth import csrf_problem, new_csrf_token
from txmsg.ops.health import MetricsResource
from txmsg.worker import dead_letters

__all__ = ["DashboardRoot", "STATIC"]

#: The directory of the CSS and script.
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

log = Logger()


def _root_of(request: IRequest) -> str:
    segments = [s.decode("utf-8", "replace") for s in request.prepath[:-1]]
    return "/" + "".join(s + "/" for s in segments)


def _send_json(request: IRequest, body: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return (json.dumps(body, sort_keys=True, default=str) + "\n").encode("utf-8")


def _send_html(request: IRequest, body: str, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    )
    request.setHeader(b"referrer-policy", b"same-origin")
    return body.encode("utf-8")


def _later(request: IRequest, work: Callable[[], Awaitable[bytes]]) -> int:
    """
    Render from a coroutine; a client gone meanwhile is not written to.
    """
    gone: list[Failure] = []
    request.notifyFinish().addErrback(gone.append)  # type: ignore[attr-defined]

    def write(body: bytes) -> None:
        if not gone:
            request.write(body)
            request.finish()

    def failed(f: Failure) -> None:
        log.failure("Dashboard request failed", f)
        if not gone:
            write(_send_json(request, {"error": "internal error"}, 500))

    Deferred.fromCoroutine(_call(work)).addCallbacks(write, failed)
    return NOT_DONE_YET


async def _call(work: Callable[[], Awaitable[bytes]]) -> bytes:
    return await work()


class _Dashboard:
    """
    What every resource of one dashboard shares.
    """

    def __init__(
        self,
        sampler: Any,
        amqp: Any,
        read_only: bool,
        results: Callable[[str], Any] | None,
        csrf: str,
        dead_letter_limit: int,
        schedule: Callable[[], Any] | None = None,
    ) -> None:
        self.schedule = schedule
        self.sampler = sampler
        self.amqp = amqp
        self.read_only = read_only
        self.results = results
        self.csrf = csrf
        self.limit = dead_letter_limit

    def page(self, request: IRequest, title: str, body: str) -> bytes:
        return _send_html(
            request,
            _pages.layout(
                title,
                body,
                root=_root_of_dashboard(request),
                csrf=self.csrf,
                read_only=self.read_only,
                interval=self.sampler.interval,
            ),
        )

    async def dead(self, queue: str) -> tuple[int | None, list[dict[str, Any]]]:
        try:
            total, letters = await dead_letters.peek(self.amqp, queue, self.limit)
        except dead_letters.NoSuchQueue:
            return None, []
        return total, [d.as_json() for d in letters]

    async def letter(self, queue: str, key: str) -> dict[str, Any] | None:
        try:
            _, letters = await dead_letters.peek(self.amqp, queue, 10000)
        except dead_letters.NoSuchQueue:
            return None
        for d in letters:
            if d.key == key:
                return d.as_json()
        return None


def _root_of_dashboard(request: IRequest) -> str:
    return str(getattr(request, "_txmsg_dashboard_root", "/"))


class DashboardRoot(Resource):
    """
    The dashboard; see the module docstring for its URLs.
    """

    def __init__(
        self,
        sampler: Any,
        amqp: Any,
        *,
        read_only: bool = False,
        results: Callable[[str], Any] | None = None,
        registry: Any = None,
        csrf_token: str | None = None,
        dead_letter_limit: int = 50,
        schedule: Callable[[], Any] | None = None,
    ) -> None:
        """
        @param sampler: the L{QueueSampler} whose figures are shown.
        @param amqp: the L{txmsg.amqp.AMQPConnection} for dead letters.
        @param read_only: refuse every action (and show no buttons).
        @param results: C{results(task_id)} returns (a Deferred of) the
            task's result record, or L{None}; without it the task page says
            no results store is configured.
        @param registry: a C{prometheus_client.CollectorRegistry} served on
            C{/metrics} (none: no C{/metrics}).
        @param csrf_token: the forms' token (default: a random one).
        @param dead_letter_limit: dead letters listed on a queue page.
        @param schedule: returns (a Deferred of) the schedule page's data
            (see L{txmsg.ops.dashboard._schedule.schedule_view}); without
            it the page says no schedule is configured.
        """
        super().__init__()
        self.dashboard = _Dashboard(
            sampler,
            amqp,
            read_only,
            results,
            csrf_token or new_csrf_token(),
            dead_letter_limit,
            schedule,
        )
        d = self.dashboard
        self.putChild(b"static", File(STATIC, defaultType="text/plain"))
        self.putChild(b"queues", _Queues(d, "page"))
        self.putChild(b"tasks", _Tasks(d, "page"))
        self.putChild(b"schedule", _Schedule(d, "page"))
        api = Resource()
        api.putChild(b"overview", _Overview(d, "api"))
        api.putChild(b"queues", _Queues(d, "api"))
        api.putChild(b"tasks", _Tasks(d, "api"))
        api.putChild(b"schedule", _Schedule(d, "api"))
        self.putChild(b"api", api)
        fragments = Resource()
        fragments.putChild(b"overview", _Overview(d, "fragment"))
        fragments.putChild(b"queues", _Queues(d, "fragment"))
        self.putChild(b"fragments", fragments)
        if registry is not None:
            self.putChild(b"metrics", MetricsResource(registry))
        self._overview = _Overview(d, "page")

    def getChildWithDefault(self, path: bytes, request: IRequest) -> Resource:
        """
        Remember where the dashboard is mounted (for links); C{/} is the
        overview.
        """
        request._txmsg_dashboard_root = _root_of(request)  # type: ignore[attr-defined]
        if path == b"":
            return self._overview
        return super().getChildWithDefault(path, request)

    def render_GET(self, request: IRequest) -> bytes:
        """
        Mounted without a trailing slash: redirect to it, so links resolve.
        """
        request.setResponseCode(301)
        request.setHeader(b"location", request.uri.split(b"?")[0] + b"/")
        return b""


class _Overview(Resource):
    isLeaf = True

    def __init__(self, dashboard: _Dashboard, mode: str) -> None:
        super().__init__()
        self.d, self.mode = dashboard, mode

    def render_GET(self, request: IRequest) -> bytes:
        overview = self.d.sampler.overview()
        if self.mode == "api":
            return _send_json(request, overview)
        fragment = _pages.overview_fragment(overview)
        if self.mode == "fragment":
            return _send_html(request, fragment)
        body = '<div id="live" data-refresh="fragments/overview">{}</div>'.format(fragment)
        return self.d.page(request, "Overview", body)


class _Queues(Resource):
    def __init__(self, dashboard: _Dashboard, mode: str) -> None:
        super().__init__()
        self.d, self.mode = dashboard, mode

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        name = path.decode("utf-8", "replace")
        if name not in self.d.sampler.histories:
            return NoResource("no such queue")
        return _Queue(self.d, name, self.mode)

    def render_GET(self, request: IRequest) -> bytes:
        if self.mode == "api":
            return _send_json(request, self.d.sampler.overview()["queues"])
        request.setResponseCode(302)
        request.setHeader(b"location", _root_of_dashboard(request).encode("utf-8"))
        return b""


class _Queue(Resource):
    def __init__(self, dashboard: _Dashboard, name: str, mode: str) -> None:
        super().__init__()
        self.d, self.name, self.mode = dashboard, name, mode

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        if path == b"":
            return self
        if path == b"history" and self.mode == "api":
            return _History(self.d, self.name)
        if path == b"dead" and self.mode in ("api", "page"):
            return _DeadLetters(self.d, self.name, self.mode)
        if path in (b"requeue", b"delete", b"purge") and self.mode == "page":
            return _Action(self.d, self.name, path.decode("ascii"))
        return NoResource()

    def render_GET(self, request: IRequest) -> int:
        summary = self.d.sampler.history(self.name).summary()

        async def render() -> bytes:
            total, letters = await self.d.dead(self.name)
            if self.mode == "api":
                return _send_json(
                    request, dict(summary, dead_letters=letters, dead_letters_total=total)
                )
            fragment = _pages.queue_fragment(summary, total, letters, self.d.csrf, self.d.read_only)
            if self.mode == "fragment":
                return _send_html(request, fragment)
            body = '{}<div id="live" data-refresh="fragments/queues/{}">{}</div>'.format(
                _pages.queue_charts(self.name), _pages._q(self.name), fragment
            )
            return self.d.page(request, "Queue " + self.name, body)

        return _later(request, render)


class _History(Resource):
    isLeaf = True

    def __init__(self, dashboard: _Dashboard, name: str) -> None:
        super().__init__()
        self.d, self.name = dashboard, name

    def render_GET(self, request: IRequest) -> bytes:
        since = None
        raw = (request.args or {}).get(b"since")
        if raw:
            try:
                since = float(raw[0])
            except ValueError:
                return _send_json(request, {"error": "since must be a number"}, 400)
        return _send_json(
            request,
            {"queue": self.name, "points": self.d.sampler.history(self.name).points(since)},
        )


class _DeadLetters(Resource):
    def __init__(self, dashboard: _Dashboard, name: str, mode: str) -> None:
        super().__init__()
        self.d, self.name, self.mode = dashboard, name, mode

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        return _DeadLetter(self.d, self.name, path.decode("utf-8", "replace"), self.mode)


class _DeadLetter(Resource):
    isLeaf = True

    def __init__(self, dashboard: _Dashboard, name: str, key: str, mode: str) -> None:
        super().__init__()
        self.d, self.name, self.key, self.mode = dashboard, name, key, mode

    def render_GET(self, request: IRequest) -> int:
        async def render() -> bytes:
            letter = await self.d.letter(self.name, self.key)
            if letter is None:
                message = "no dead letter {} in {}.dead (requeued or deleted?)".format(
                    self.key, self.name
                )
                if self.mode == "api":
                    return _send_json(request, {"error": message}, 404)
                return _send_html(request, message, 404)
            if self.mode == "api":
                return _send_json(request, letter)
            body = _pages.dead_letter_page(self.name, letter, self.d.csrf, self.d.read_only)
            return self.d.page(request, "Dead letter", body)

        return _later(request, render)


class _Action(Resource):
    """
    C{POST} requeue, delete or purge: CSRF-checked, refused when read-only.
    """

    isLeaf = True

    def __init__(self, dashboard: _Dashboard, name: str, action: str) -> None:
        super().__init__()
        self.d, self.name, self.action = dashboard, name, action

    def _answer(self, request: IRequest, code: int, message: str, nxt: str) -> bytes:
        if (request.getHeader(b"accept") or b"").startswith(b"application/json"):
            return _send_json(request, {"ok": code < 400, "message": message}, code)
        if code >= 400:
            return _send_html(request, message, code)
        root = _root_of_dashboard(request)
        request.setResponseCode(303)
        request.setHeader(b"location", (root + nxt).encode("utf-8"))
        return b""

    def render_POST(self, request: IRequest) -> Any:
        nxt = "queues/" + _pages._q(self.name)
        if self.d.read_only:
            return self._answer(request, 403, "read-only dashboard: actions are off", nxt)
        problem = csrf_problem(request, self.d.csrf)
        if problem is not None:
            return self._answer(request, 403, problem, nxt)
        args = request.args or {}
        keys = [k.decode("utf-8", "replace") for k in args.get(b"key", [])]
        everything = args.get(b"all") == [b"1"]
        if not keys and not everything:
            return self._answer(request, 400, "name dead letters (key=...) or all=1", nxt)
        if self.action == "delete" and everything:
            return self._answer(request, 400, "use purge to delete them all", nxt)
        if self.action == "purge" and not everything:
            return self._answer(request, 400, "purge needs all=1", nxt)
        if everything and args.get(b"confirmed") != [b"1"]:
            if (request.getHeader(b"accept") or b"").startswith(b"application/json"):
                return self._answer(request, 400, "a bulk action needs confirmed=1", nxt)
            body = _pages.confirm_page(self.name, self.action, self.d.csrf)
            return self.d.page(request, "Confirm", body)

        async def act() -> bytes:
            amqp, name = self.d.amqp, self.name
            try:
                if self.action == "purge":
                    n = await dead_letters.purge(amqp, name)
                    message = "purged {} dead letter(s) of {}".format(n, name)
                elif self.action == "delete":
                    n = len(await dead_letters.delete(amqp, name, keys))
                    message = "deleted {} dead letter(s) of {}".format(n, name)
                else:
                    done = await dead_letters.requeue(
                        amqp, name, 10000 if keys else 1000000, keys=keys or None
                    )
                    n = len(done)
                    message = "requeued {} dead letter(s) of {}".format(n, name)
            except Exception as e:
                return self._answer(request, 502, "{}: {}".format(self.action, e), nxt)
            log.info("Dashboard: {message}", message=message)
            await self.d.sampler.sample_now()
            if keys and n == 0:
                return self._answer(request, 404, "no such dead letter (already handled?)", nxt)
            return self._answer(request, 200, message, nxt)

        return _later(request, act)


class _Tasks(Resource):
    def __init__(self, dashboard: _Dashboard, mode: str) -> None:
        super().__init__()
        self.d, self.mode = dashboard, mode

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        if path == b"":
            return self
        return _Task(self.d, path.decode("utf-8", "replace"), self.mode)

    def render_GET(self, request: IRequest) -> Any:
        task_id = ((request.args or {}).get(b"id") or [b""])[0].decode("utf-8", "replace")
        if not task_id:
            return _send_html(request, "name a task: tasks/ID or tasks?id=ID", 400)
        return _Task(self.d, task_id.strip(), self.mode).render_GET(request)


class _Task(Resource):
    isLeaf = True

    def __init__(self, dashboard: _Dashboard, task_id: str, mode: str) -> None:
        super().__init__()
        self.d, self.task_id, self.mode = dashboard, task_id, mode

    def render_GET(self, request: IRequest) -> int:
        async def render() -> bytes:
            available = self.d.results is not None
            result = None
            if self.d.results is not None:
                result = await self.d.results(self.task_id)
            if self.mode == "api":
                if not available:
                    return _send_json(request, {"error": "no results store configured"}, 404)
                if result is None:
                    return _send_json(request, {"error": "no result", "id": self.task_id}, 404)
                return _send_json(request, result)
            body = _pages.task_page(self.task_id, result, available)
            return self.d.page(request, "Task " + self.task_id, body)

        return _later(request, render)


class _Schedule(Resource):
    isLeaf = True

    def __init__(self, dashboard: _Dashboard, mode: str) -> None:
        super().__init__()
        self.d, self.mode = dashboard, mode

    def render_GET(self, request: IRequest) -> int:
        async def render() -> bytes:
            view = None if self.d.schedule is None else await self.d.schedule()
            if self.mode == "api":
                if view is None:
                    return _send_json(request, {"error": "no schedule configured"}, 404)
                return _send_json(request, view)
            return self.d.page(request, "Schedule", _pages.schedule_page(view))

        return _later(request, render)

"""The node's status and control socket: HTTP (aiohttp) on a thread of its own.

The daemon's loop stays single-threaded: it publishes a status snapshot and events to a Board, and
reads control commands from it; the server thread only reads snapshots, queues commands and wakes
the loop. Status is open to anyone who can reach the port (unless --private); control needs the
farm's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

COMMANDS = ("pause", "resume", "drain", "kill", "quit", "cancel")
MAX_BODY = 16 * 1024
LOG_TAIL = 64 * 1024


class Board:
    """What the daemon shares with its server: a status snapshot, the running log, and a command queue."""

    def __init__(self, wake: Callable[[], None]):
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {}
        self.log_path: Path | None = None
        self.commands: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()
        self.wake = wake
        self.server: StatusServer | None = None

    def set_status(self, status: dict[str, Any]) -> None:
        with self._lock:
            self._status = status

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._status)

    def command(self, name: str, argument: str | None = None) -> None:
        self.commands.put((name, argument))
        self.wake()

    def publish(self, kind: str, **data: Any) -> None:
        if self.server is not None:
            self.server.publish({"event": kind, "time": time.time(), **data})


class StatusServer:
    """aiohttp on its own event loop and thread; `start()` returns once the port is bound, `stop()` joins."""

    def __init__(self, board: Board, bind: str, port: int, token: str, private: bool = False):
        self.board = board
        self.bind = bind
        self.port = port
        self.token = token
        self.private = private
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: set[asyncio.Queue] = set()
        self._thread = threading.Thread(target=self._serve, name="renderd-status", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> int:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        board = self.board
        board.server = self
        return self.port

    def stop(self) -> None:
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._close_subscribers)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)

    def publish(self, event: dict[str, Any]) -> None:
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._fan_out, event)

    # ---- on the server thread -------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status)
        app.router.add_get("/log", self._log)
        app.router.add_get("/events", self._events)
        for name in COMMANDS:
            app.router.add_post(f"/{name}", self._control)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.bind, self.port)
            loop.run_until_complete(site.start())
            server = site._server  # the bound socket tells which port 0 became
            self.port = server.sockets[0].getsockname()[1] if server and server.sockets else self.port
        except OSError as error:
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def _fan_out(self, event: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a reader that does not keep up misses events
                subscriber.put_nowait(event)

    def _close_subscribers(self) -> None:
        for subscriber in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.put_nowait(None)

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        given = given or request.headers.get("X-Renderd-Token", "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _readable(self, request: web.Request) -> None:
        if self.private and not self._authorized(request):
            raise web.HTTPUnauthorized(text="this node's status needs the farm's token\n")

    async def _status(self, request: web.Request) -> web.Response:
        self._readable(request)
        return web.json_response(self.board.status())

    async def _page(self, request: web.Request) -> web.Response:
        self._readable(request)
        status = self.board.status()
        rows = "".join(
            f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(json.dumps(value))}</td></tr>"
            for key, value in status.items()
        )
        name = html.escape(str(status.get("name", "renderd")))
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
            f"<title>renderd {name}</title><style>body{{font-family:sans-serif}}th{{text-align:left;padding-right:1em}}"
            "td{font-family:monospace}</style></head>"
            f"<body><h1>renderd node {name}</h1><table>{rows}</table>"
            "<p><a href='/status'>status as JSON</a> · <a href='/log'>log of the running chunk</a></p></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _log(self, request: web.Request) -> web.Response:
        self._readable(request)
        path = self.board.log_path
        if path is None:
            return web.Response(text="", status=204)
        try:
            with path.open("rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - LOG_TAIL))
                data = handle.read()
        except OSError:
            return web.Response(text="", status=204)
        return web.Response(body=data, content_type="text/plain", charset="utf-8")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self._readable(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        subscriber: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.subscribers.add(subscriber)
        try:
            await response.write(f"data: {json.dumps({'event': 'hello', **self.board.status()})}\n\n".encode())
            while True:
                try:
                    event = await asyncio.wait_for(subscriber.get(), timeout=15)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if event is None:
                    break
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.subscribers.discard(subscriber)
        return response

    async def _control(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            raise web.HTTPUnauthorized(text="control needs the farm's token (RENDERD_TOKEN or SPOOL/token)\n")
        name = request.path.strip("/")
        argument = request.query.get("job")
        if name == "cancel" and not argument:
            raise web.HTTPBadRequest(text="cancel needs ?job=JOB\n")
        self.board.command(name, argument)
        return web.json_response({"accepted": name, "job": argument}, status=202)

"""Janus (Debian's package, the C SFU used as the yardstick) for benchmarks/gateway_vs_janus.py:
installed on demand, configured in a temporary folder with only the VideoRoom plugin and the
plain HTTP transport, and a small client of its HTTP API (one session, long-poll events).

Never a dependency of the product: nothing under services/ uses Janus.

The client follows the VideoRoom API of Janus 1.x: a publisher ``join``s (ptype publisher),
then ``publish``es with a JSEP offer; a subscriber ``join``s (ptype subscriber) with the feed
it wants, gets Janus's offer and ``start``s with its answer. Offers and answers carry their
candidates (``"trickle": false``): aiortc gathers before it returns a description.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from pathlib import Path
from typing import Any

import debian_tool
import httpx

JANUS = "/usr/bin/janus"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
PORT = 8088


def ensure_installed() -> str:
    """The janus binary; installs Debian's package first when it is missing (says so)."""
    return debian_tool.ensure(JANUS, "janus")


def write_config(folder: Path, listen_ip: str, interface: str) -> Path:
    """A config folder whose plugin and transport folders hold only VideoRoom and HTTP (links
    to Debian's libraries), so Janus loads nothing else; ICE only on ``interface``, no STUN or
    TURN, no admin API. Returns the main config file."""
    for sub, lib in (("plugins", "plugins/libjanus_videoroom.so"),
                     ("transports", "transports/libjanus_http.so"), ("events", ""), ("loggers", "")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        if lib:
            (folder / sub / Path(lib).name).symlink_to(LIB / lib)
    main = folder / "janus.jcfg"
    main.write_text(f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder}/plugins"
    transports_folder = "{folder}/transports"
    events_folder = "{folder}/events"
    loggers_folder = "{folder}/loggers"
    debug_level = 3
    interface = "{listen_ip}"
    session_timeout = 60
}}
media: {{
    ipv6 = false
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{interface}"
}}
plugins: {{}}
transports: {{}}
events: {{}}
loggers: {{}}
""")
    (folder / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {PORT}
    ip = "{listen_ip}"
    https = false
}}
admin: {{
    admin_http = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return main


def command(config: Path) -> list[str]:
    return [JANUS, "-C", str(config), "-F", str(config.parent), "--disable-colors"]


class JanusError(RuntimeError):
    pass


class JanusClient:
    """One Janus session over HTTP: requests by transaction, asynchronous plugin events from a
    long-poll loop, a keep-alive every 20 s (sessions time out after 60 s)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.http = httpx.AsyncClient(timeout=60)
        self.session = 0
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        self.session = (await self._post(self.base, {"janus": "create"}))["data"]["id"]
        self.tasks = [asyncio.ensure_future(self._poll()), asyncio.ensure_future(self._keepalive())]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(httpx.HTTPError, JanusError):
            await self._post(f"{self.base}/{self.session}", {"janus": "destroy"})
        await self.http.aclose()

    async def attach(self) -> int:
        body = {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        return int((await self._post(f"{self.base}/{self.session}", body))["data"]["id"])

    async def request(self, handle: int, body: dict[str, Any],
                      jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """A plugin request; for asynchronous ones (``ack`` first) waits for the event that
        answers it. Returns the whole reply (``plugindata`` and any ``jsep``)."""
        transaction = secrets.token_hex(8)
        message: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep:
            message["jsep"] = jsep
        event = asyncio.get_running_loop().create_future()
        self.waiting[transaction] = event
        try:
            reply = await self._post(f"{self.base}/{self.session}/{handle}", message)
            if reply["janus"] == "ack":
                reply = await asyncio.wait_for(event, 60)
        finally:
            self.waiting.pop(transaction, None)
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"videoroom {body.get('request')}: {data['error']}")
        return reply

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("transaction", secrets.token_hex(8))
        resp = await self.http.post(url, json=body)
        resp.raise_for_status()
        reply: dict[str, Any] = resp.json()
        if reply.get("janus") == "error":
            raise JanusError(f"{body['janus']}: {reply['error']}")
        return reply

    async def _poll(self) -> None:
        while True:
            try:
                resp = await self.http.get(f"{self.base}/{self.session}", params={"maxev": 10})
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            events = resp.json()
            for event in events if isinstance(events, list) else [events]:
                future = self.waiting.get(event.get("transaction", ""))
                if future and not future.done() and event.get("janus") == "event":
                    future.set_result(event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(20)
            with contextlib.suppress(httpx.HTTPError, JanusError):
                await self._post(f"{self.base}/{self.session}", {"janus": "keepalive"})


def janus_log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


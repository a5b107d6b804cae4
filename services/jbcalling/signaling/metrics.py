"""Signaling's metrics: rooms and sockets on this replica, joins, and every refusal by reason.

One ``SignalingMetrics`` per app (its own registry: tests build several apps in one process),
kept in ``app.state.metrics``; the API routes and the participant socket reach it through their
request or socket (``of``), so no handler signature changes for it.

Refusals, labelled by ``reason``:

- HTTP: every ``ServiceError`` a route raises, by its error code (``rate_limited``,
  ``room_full``, ``room_not_found``, ``unauthorized``, ``removed``, ``not_in_room``...), counted
  by wrapping the app's ServiceError handler (``install``);
- WebSocket: what ``signaling/ws.py`` refuses, by the names below (``origin``, ``bad_token``,
  ``banned``, ``not_in_room``, ``rate_limited_message``, ``flooding``, ``message_too_big``,
  ``forbidden``...).
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import HTTPConnection

from jbcalling.common.errors import ServiceError


class SignalingMetrics:
    def __init__(self, registry: CollectorRegistry,
                 sockets: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.created = Counter("jb_signaling_rooms_created_total", "Rooms created",
                               registry=registry)
        self.joins = Counter("jb_signaling_joins_total", "Participants who joined a room (a seat "
                             "given, before their socket connects)", registry=registry)
        self.connects = Counter("jb_signaling_socket_connects_total", "Participant sockets "
                                "accepted into a room (welcome sent)", registry=registry)
        self.refusals = Counter("jb_signaling_refusals_total", "Requests and socket messages "
                                "refused, by reason", ["reason"], registry=registry)
        registry.register(_Live(sockets))

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason).inc()


class _Live(Collector):
    """Rooms and sockets of this replica at scrape time (``ws.Hub.sockets``)."""

    def __init__(self, sockets: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self.sockets = sockets

    def collect(self) -> Iterator[Metric]:
        rooms = self.sockets()
        yield GaugeMetricFamily("jb_signaling_rooms", "Rooms with a participant socket on this "
                                "replica", value=len(rooms))
        yield GaugeMetricFamily("jb_signaling_sockets", "Participant sockets open on this "
                                "replica", value=sum(len(s) for s in rooms.values()))
        # Room sizes without room ids (a room id is personal data): rooms per participant count.
        sizes = GaugeMetricFamily("jb_signaling_rooms_by_participants", "Rooms on this replica by "
                                  "their participant sockets here (10+: ten or more)",
                                  labels=["participants"])
        for n, count in sorted(collections.Counter(min(len(s), 10) for s in rooms.values()).items()):
            sizes.add_metric(["10+" if n == 10 else str(n)], count)
        yield sizes


def install(app: FastAPI, metrics: SignalingMetrics) -> None:
    """Keep ``metrics`` in ``app.state`` and count every ServiceError answered as a refusal.
    Call after ``health.install``, which adds the handler wrapped here."""
    app.state.metrics = metrics
    answer = app.exception_handlers[ServiceError]

    async def counted(request: Request, exc: Exception) -> Any:
        if isinstance(exc, ServiceError):
            metrics.refused(exc.code)
        answered = answer(request, exc)
        return await answered if inspect.isawaitable(answered) else answered

    app.add_exception_handler(ServiceError, counted)


def of(conn: HTTPConnection) -> SignalingMetrics | None:
    """The metrics of the app serving ``conn`` (a request or a WebSocket); None in an app built
    without them."""
    return getattr(conn.app.state, "metrics", None)


def refused(conn: HTTPConnection, reason: str) -> None:
    found = of(conn)
    if found is not None:
        found.refused(reason)

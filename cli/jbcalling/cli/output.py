"""How jbctl talks: data on stdout, messages on stderr.

``--json`` makes stdout machine-readable (one document, or JSON Lines for streams of events);
``-q`` silences messages, ``-v`` adds detail. A live view is used only when stderr is a TTY.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table


class Output:
    def __init__(self, as_json: bool = False, verbosity: int = 0) -> None:
        self.as_json = as_json
        self.verbosity = verbosity  # -1 quiet, 0 normal, 1 verbose
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)

    @property
    def live(self) -> bool:
        return self.err.is_terminal and self.verbosity >= 0 and not self.as_json

    def say(self, message: str) -> None:
        if self.verbosity >= 0:
            self.err.print(message, markup=False)

    def detail(self, message: str) -> None:
        if self.verbosity > 0:
            self.err.print(message, markup=False, style="dim")

    def error(self, message: str, hint: str = "", details: list[str] | None = None) -> None:
        self.err.print(f"error: {message}", markup=False, style="bold red")
        for line in details or []:
            self.err.print(f"  {line}", markup=False)
        if hint:
            self.err.print(f"hint: {hint}", markup=False)

    def data(self, doc: Any) -> None:
        """The command's result: one JSON document with --json."""
        if self.as_json:
            sys.stdout.write(json.dumps(doc, default=str) + "\n")
            sys.stdout.flush()

    def event(self, kind: str, **fields: Any) -> None:
        """One progress event: a JSON line on stdout with --json, a message otherwise."""
        if self.as_json:
            sys.stdout.write(json.dumps({"event": kind, **fields}, default=str) + "\n")
            sys.stdout.flush()
        elif "message" in fields:
            self.say(str(fields["message"]))

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.as_json:
            return
        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*(str(c) for c in row))
        self.out.print(table)

    @contextmanager
    def status(self, text: str) -> Iterator[Any]:
        """A spinner line on a TTY (returned object has ``update(text)``); nothing otherwise."""
        if self.live:
            with self.err.status(text) as st:
                yield st
        else:
            yield _NoStatus()


class _NoStatus:
    def update(self, *_: Any, **__: Any) -> None:
        return None

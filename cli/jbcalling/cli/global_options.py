"""jbctl's global options (``--json``, ``--env``, ``-v``, ``-q``) before or after the command.

``jbctl status --json`` and ``jbctl --json status`` mean the same. The root group moves the
global options it finds after the command name to the front before parsing, so every command,
nested ones included, takes them in both places with no per-command code. The option specs are
read from the root group's own parameters (one list), and the walk follows the commands' own
options so that an option's value is never taken for a global option; a command's own option
of the same name keeps its meaning, and nothing after ``--`` moves.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


def _options(command: Any) -> dict[str, bool]:
    """Option name -> whether it takes a value, for ``command``'s own options."""
    found: dict[str, bool] = {}
    for param in getattr(command, "params", []):
        if type(param).__name__.endswith("Option"):
            for name in [*param.opts, *param.secondary_opts]:
                found[name] = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
    return found


def hoist(root: Any, ctx: Any, args: list[str]) -> list[str]:
    """``args`` with the root's options that follow a command name moved to the front."""
    globals_ = _options(root)
    front: list[str] = []
    rest: list[str] = []
    command = root
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            rest.extend(args[i:])
            break
        name = tok.split("=", 1)[0]
        own = _options(command) if command is not root else {}
        if name in globals_ and name not in own:
            takes = globals_[name] and "=" not in tok
            front.extend(args[i:i + 2] if takes else [tok])
            i += 2 if takes else 1
            continue
        rest.append(tok)
        if tok.startswith("-") and len(tok) > 1:
            if own.get(name) and "=" not in tok and i + 1 < len(args):
                rest.append(args[i + 1])  # the option's value, whatever it looks like
                i += 1
        elif hasattr(command, "get_command"):
            command = command.get_command(ctx, tok) or command
        i += 1
    return front + rest


class GlobalOptionsGroup(TyperGroup):
    """The root group: takes its own options anywhere on the command line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist(self, ctx, args))

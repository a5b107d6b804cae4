"""Nomad's plan diff as short lines an operator can read (pure functions)."""

from __future__ import annotations

from typing import Any

_MARK = {"Added": "+", "Deleted": "-", "Edited": "~", "None": " "}


def changed(plan: dict[str, Any]) -> bool:
    """True when the plan changes anything. Nomad 1.6 marks a group "Edited" with no field or
    object changed on the first plan after a registration; that alone is not a change."""
    diff = plan.get("Diff") or {}
    if diff.get("Type", "None") in ("Added", "Deleted"):
        return True
    return _has_change(diff)


def _has_change(node: dict[str, Any]) -> bool:
    for f in node.get("Fields") or []:
        if f.get("Type", "None") != "None":
            return True
    for key in ("Objects", "TaskGroups", "Tasks"):
        for child in node.get(key) or []:
            if child.get("Type") in ("Added", "Deleted") or _has_change(child):
                return True
    return False


def lines(plan: dict[str, Any]) -> list[str]:
    diff = plan.get("Diff") or {}
    if not changed(plan):
        return []
    if diff["Type"] == "Added":
        return [f"+ job {diff.get('ID', '')}: new"]
    out = [f"~ job {diff.get('ID', '')}"]
    out += _fields(diff, "  ")
    for tg in diff.get("TaskGroups") or []:
        if tg.get("Type") == "None":
            continue
        updates = ", ".join(f"{n} {k}" for k, n in (tg.get("Updates") or {}).items() if n)
        out.append(f"  {_MARK.get(tg['Type'], '?')} group {tg['Name']}" +
                   (f" ({updates})" if updates else ""))
        out += _fields(tg, "    ")
        for task in tg.get("Tasks") or []:
            if task.get("Type") == "None":
                continue
            notes = ", ".join(task.get("Annotations") or [])
            out.append(f"    {_MARK.get(task['Type'], '?')} task {task['Name']}" +
                       (f" ({notes})" if notes else ""))
            out += _fields(task, "      ")
    return out


def _fields(node: dict[str, Any], indent: str, prefix: str = "") -> list[str]:
    out = []
    for f in node.get("Fields") or []:
        if f.get("Type") == "None":
            continue
        name = prefix + f["Name"]
        if f["Type"] == "Added":
            out.append(f"{indent}+ {name}: {f.get('New')!r}")
        elif f["Type"] == "Deleted":
            out.append(f"{indent}- {name}: {f.get('Old')!r}")
        else:
            out.append(f"{indent}~ {name}: {f.get('Old')!r} => {f.get('New')!r}")
    for obj in node.get("Objects") or []:
        if obj.get("Type") == "None":
            continue
        out += _fields(obj, indent, prefix + obj["Name"] + ".")
    return out

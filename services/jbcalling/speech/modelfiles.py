"""Where a service finds its model files, and the message when they are not there."""

from __future__ import annotations

from pathlib import Path


class MissingModel(Exception):
    """A model's files are not in the models folder; the message says how to fetch them."""

    def __init__(self, model: str, folder: Path, missing: list[str]) -> None:
        self.model = model
        self.folder = folder
        self.missing = missing
        super().__init__(f"model {model}: missing {', '.join(missing)} in {folder}; "
                         f"fetch it with `jbctl models pull {model}`")


def require(model: str, folder: Path, names: list[str]) -> Path:
    """Return ``folder`` if every file in ``names`` is in it, else raise :class:`MissingModel`."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise MissingModel(model, folder, missing)
    return folder

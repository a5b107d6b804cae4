"""Where a service finds its model files, the message when they are not there, and whether they
are a stand-in (random weights in the real format: dev cluster and tests, never production)."""

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


STANDIN_MARKER = "STANDIN"  # a file in a model folder built by jbcalling.speech.standin_*


def is_standin(folder: Path) -> bool:
    return (folder / STANDIN_MARKER).is_file()


def mark_standin(folder: Path, what: str) -> None:
    (folder / STANDIN_MARKER).write_text(what + "\n")


def require(model: str, folder: Path, names: list[str]) -> Path:
    """Return ``folder`` if every file in ``names`` is in it, else raise :class:`MissingModel`."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise MissingModel(model, folder, missing)
    return folder

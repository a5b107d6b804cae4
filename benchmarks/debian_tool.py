"""Debian packages a benchmark needs but the product does not (Janus, tcpdump): installed with
apt the first time a benchmark runs without them, saying so."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ensure(binary: str, package: str) -> str:
    """``binary`` (a path); runs `apt-get install -y <package>` first when it is missing."""
    if not Path(binary).exists():
        print(f"{package}: {binary} missing, running `apt-get install -y {package}` (benchmark "
              "set-up only, not a product dependency)", flush=True)
        subprocess.run(["apt-get", "install", "-y", package], check=True, timeout=900,
                       env={"DEBIAN_FRONTEND": "noninteractive",
                            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return binary

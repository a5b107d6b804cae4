"""CI's checks of ansible/: ansible-lint (production profile) and the playbook's syntax check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg"), "NO_COLOR": "1",
            "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    res = subprocess.run([str(BIN / "ansible-lint"), "--profile", "production", "--offline",
                          "--nocolor", "site.yml"], cwd=ROOT / "ansible",
                         env={**_env(), "ANSIBLE_HOME": str(tmp_path)}, capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Profile 'production' was required, and it passed" in res.stdout + res.stderr


def test_playbook_syntax_check_with_the_example_inventory(tmp_path: Path) -> None:
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory.ini", "ansible/site.yml",
                          "--syntax-check"], cwd=ROOT, env={**_env(), "ANSIBLE_HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_example_inventory_has_the_three_nodes_and_only_documentation_addresses() -> None:
    text = (ROOT / "inventory.ini").read_text()
    for host, role in (("translation01", "edge"), ("translation02", "ai"), ("translation03", "tts")):
        line = next(li for li in text.splitlines() if li.startswith(host + " "))
        assert f"jb_node_role={role}" in line
        # RFC 5737 TEST-NET-2 only: never a real address in the repository
        assert all(w.split("=")[1].startswith("198.51.100.") for w in line.split()
                   if w.startswith(("ansible_host=", "jb_node_address=", "jb_public_address=")))

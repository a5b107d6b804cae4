"""jbctl's global options work before and after the command, with one implementation."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from jbcalling.cli.global_options import hoist
from jbcalling.cli.main import app

pytestmark = pytest.mark.unit
ROOT = get_command(app)


@pytest.mark.parametrize(("argv", "want"), [
    (["status", "--json"], ["--json", "status"]),
    (["--json", "status"], ["--json", "status"]),
    (["cluster", "up", "-q", "--acl"], ["-q", "cluster", "up", "--acl"]),
    (["cluster", "--json", "status"], ["--json", "cluster", "status"]),
    (["top", "--via", "ingress", "--json"], ["--json", "top", "--via", "ingress"]),
    (["deploy", "signaling", "--env", "prod"], ["--env", "prod", "deploy", "signaling"]),
    (["deploy", "--env=prod", "-v"], ["--env=prod", "-v", "deploy"]),
    # a command option's value stays with it, even when it looks like a global option
    (["logs", "signaling", "--alloc", "-v", "--json"], ["--json", "logs", "signaling", "--alloc", "-v"]),
    (["logs", "signaling", "--", "--json"], ["logs", "signaling", "--", "--json"]),
])
def test_global_options_move_to_the_front(argv: list[str], want: list[str]) -> None:
    assert hoist(ROOT, None, argv) == want


def test_json_after_the_command_reaches_the_command() -> None:
    """`jbctl cluster status --json` prints the JSON document (it failed with "No such option")."""
    env = {"JB_STATE_DIR": "/nonexistent/jbctl-test", "JB_DEV_PORT_OFFSET": "19999"}
    res = CliRunner().invoke(app, ["cluster", "status", "--json"], env=env)
    assert res.exit_code == 1, res.output  # no cluster runs there
    assert '"running": false' in res.stdout
    res = CliRunner().invoke(app, ["cluster", "status", "--nope"], env=env)
    assert res.exit_code == 2 and "No such option" in res.output

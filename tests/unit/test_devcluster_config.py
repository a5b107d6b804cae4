"""Dev-cluster builders (pure): ports, config text, argv."""

from pathlib import Path

import pytest

from jbcalling.cli import devcluster_config as cfg

pytestmark = pytest.mark.unit


def test_an_offset_moves_every_port_and_the_dynamic_range() -> None:
    a, b = cfg.Ports.with_offset(0), cfg.Ports.with_offset(10000)
    assert a.nomad_http == 4646 and b.nomad_http == 14646
    assert set(a.named().values()).isdisjoint(b.named().values())
    assert a.dynamic_max < b.dynamic_min


def test_nomad_config_has_roles_volumes_and_loopback(tmp_path: Path) -> None:
    layout = cfg.layout_for(tmp_path, 0)
    text = cfg.nomad_config(cfg.Ports.with_offset(0), layout, acl=True)
    assert 'jb_role = "edge,ai,tts"' in text
    for vol in cfg.HOST_VOLUMES:
        assert f'host_volume "{vol}"' in text
    assert 'bind_addr = "127.0.0.1"' in text and "enabled = true" in text
    assert cfg.nomad_argv("nomad", layout)[:3] == ["nomad", "agent", "-dev"]

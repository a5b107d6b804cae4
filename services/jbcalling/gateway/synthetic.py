"""Moved to jbcalling.client; kept only for tests/integration/test_production.py, which still
imports it from here. Import from jbcalling.client."""

from jbcalling.client import (  # noqa: F401
    MediaRefused,
    PcmTrack,
    SyntheticPeer,
    ice_servers_of,
    keep_media,
    negotiate_over_signaling,
    rejoin,
)

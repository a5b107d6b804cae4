"""A Python participant of a call: a synthetic aiortc peer (peer.py) and the media negotiation,
rejoin and event loop of the participant protocol (negotiation.py). `jbctl probe` and the tests
use it; no service imports it."""

from jbcalling.client.negotiation import MediaRefused, keep_media, negotiate_over_signaling, rejoin
from jbcalling.client.peer import PcmTrack, SyntheticPeer, ice_servers_of

__all__ = ["MediaRefused", "PcmTrack", "SyntheticPeer", "ice_servers_of", "keep_media",
           "negotiate_over_signaling", "rejoin"]

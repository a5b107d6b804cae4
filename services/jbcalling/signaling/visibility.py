"""``video_visibility``: the tiles a participant's page does not show, passed on to the gateway.

The gateway then stops forwarding those participants' video to this one (their audio goes on)
and asks for a keyframe when a tile shows again (gateway/sfu.py, ``Sfu.set_hidden``). A lower
layer instead of a pause would need simulcast or SVC, which aiortc does not receive
(docs/decisions.md, "Pausing hidden tiles").

The list is checked here, before it reaches the gateway: a list of at most
``protocol.MAX_HIDDEN_TILES`` distinct participant ids of this room (the sender itself left
out). A bad message is refused with ``bad_message`` and a reason; the gateway keeps the last
good list. The rate limit is the socket's ``video_visibility`` bucket (pages send at most one
message per debounce, ~300 ms, when the set changes).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jbcalling.common.protocol import MAX_HIDDEN_TILES, Error, VideoVisibility
from jbcalling.signaling.media import MediaRelay
from jbcalling.signaling.rooms import RoomStore

SHAPE = (f'video_visibility: "hidden" is a list of at most {MAX_HIDDEN_TILES} participant ids '
         "(the tiles this page does not show)")


async def apply(store: RoomStore, media: MediaRelay, room: str, pid: str,
                msg: dict[str, Any]) -> Error | None:
    """Tell the room's gateway which tiles ``pid``'s page hides; the error to answer, if any."""
    try:
        hidden = VideoVisibility.model_validate(msg).hidden
    except ValidationError:
        return Error(code="bad_message", message=SHAPE)
    if len(set(hidden)) != len(hidden):
        return Error(code="bad_message", message="video_visibility: each id at most once")
    wanted = set(hidden) - {pid}
    if wanted:
        present = {p.id for p in await store.participants(room)}
        if not wanted <= present:
            return Error(code="no_such_participant",
                         message="video_visibility: hide only participants of this room")
    await media.visibility(room, pid, sorted(wanted))
    return None

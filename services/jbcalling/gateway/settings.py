"""The gateway's one settings object (``JB_GATEWAY_*``)."""

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from jbcalling.common.settings import ServiceSettings
from jbcalling.gateway import pacing


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JB_GATEWAY_")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis: room events, captions.")
    max_rooms: int = Field(20, ge=1, description="Rooms this instance serves.")
    max_peers: int = Field(6, ge=2, le=12, description="Media peers per room (= room size).")
    announced_ip: str = Field("", description="Public IP put in ICE host candidates (1:1 NAT); "
                              "empty: the interface addresses.")
    ice_addresses: list[str] = Field(default_factory=list, description="Addresses to gather ICE "
                                     "host candidates on (JSON list); empty: every interface.")
    consul_http_addr: str = Field("http://127.0.0.1:8500", description="Consul, to find stt/mt/tts.")
    stt_url: str = Field("", description="stt base URL; empty: a healthy instance from Consul.")
    mt_url: str = Field("", description="mt base URL; empty: from Consul.")
    tts_url: str = Field("", description="tts base URL; empty: from Consul.")
    stt_talk_level_dbfs: float = Field(-40.0, le=0, description="A participant talks, and their "
                                       "stt stream opens, when half of their last 160 ms of "
                                       "audio is above this level (RMS, dBFS).")
    stt_quiet_close_s: float = Field(20.0, gt=0, description="A participant's stt stream ends "
                                     "after this long without speech (its place goes to the "
                                     "next speaker).")
    pacing_burst: int = Field(pacing.BURST, ge=0, le=pacing.MAX_QUEUE, description="Packets a "
                              "subscriber gets back to back; the rest wait in its pacer "
                              "(gateway/pacing.py). 0: no pacing.")
    pacing_factor: float = Field(pacing.FACTOR, ge=1.0, le=20.0, description="A subscriber's "
                                 "pacer releases packets at this many times the subscriber's "
                                 f"own recent packet rate (at least {pacing.MIN_RATE:g} a "
                                 "second).")
    api_token: str = Field("", description="Shared token signaling presents (X-JB-Gateway-Token); "
                           "from Nomad Variable nomad/jobs (gateway_token). Empty: no check.")
    require_api_token: bool = Field(False, description="Refuse to start without api_token (the "
                                    "jobs set it: every cluster, dev included, has a token).")

    @model_validator(mode="after")
    def _token_when_required(self) -> "GatewaySettings":
        if self.require_api_token and not self.api_token:
            raise ValueError(
                "JB_GATEWAY_API_TOKEN is empty but JB_GATEWAY_REQUIRE_API_TOKEN is true: deploy "
                "with `jbctl deploy gateway` (it creates gateway_token in Nomad Variable "
                "nomad/jobs), or set JB_GATEWAY_API_TOKEN to the token signaling sends")
        return self

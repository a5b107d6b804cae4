"""gateway: the WebRTC media gateway (aiortc) - a forwarding SFU with an audio tap for speech."""

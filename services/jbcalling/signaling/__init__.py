"""signaling: the public HTTPS origin (rooms API, WebSocket signaling, captions, web client)."""

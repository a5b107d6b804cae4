// The signaling server: the rooms REST API and the participant WebSocket (docs/protocol.md).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

async function request(method, path, body, token) {
  const headers = {};
  if (body) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch {
    throw new ApiError(0, "network", "");
  }
  if (!resp.ok) {
    let detail = {};
    try {
      detail = (await resp.json()).error || {}; // every service: {"error": {"code", "message"}}
    } catch {
      /* not JSON: the status says enough */
    }
    throw new ApiError(resp.status, detail.code || `http_${resp.status}`, detail.message || "");
  }
  return resp;
}

export async function createRoom() {
  return (await request("POST", "/api/rooms")).json();
}

export async function joinRoom(room, body) {
  return (await request("POST", `/api/rooms/${room}/join`, body)).json();
}

export async function transcript(room, format, token) {
  return (await request("GET", `/api/rooms/${room}/transcript?format=${format}`, null, token)).blob();
}

// Close codes after which reconnecting cannot help (signaling/ws.py).
export const FINAL_CLOSE = { 4000: "expired", 4001: "removed", 4002: "ended", 4004: "expired" };

/** The participant WebSocket; reconnects with the same token after a drop (a network blip, a
 * signaling replica going away) until a close code says the seat is gone. */
export class Signal {
  constructor(room, token, onEvent, onState) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}` +
      `/ws/rooms/${room}?token=${encodeURIComponent(token)}`;
    this.onEvent = onEvent;
    this.onState = onState;
    this.delay = 500;
    this.closed = false;
    this.ws = null;
    this.pinger = null;
  }

  connect() {
    const ws = (this.ws = new WebSocket(this.url));
    ws.onopen = () => {
      this.delay = 500;
      this.onState("open");
    };
    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onEvent(msg);
    };
    ws.onclose = (e) => {
      if (this.closed || ws !== this.ws) return;
      if (FINAL_CLOSE[e.code]) {
        this.closed = true;
        this.onState("closed", FINAL_CLOSE[e.code]);
        return;
      }
      this.onState("reconnecting");
      setTimeout(() => !this.closed && this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 8000);
    };
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.send({ type: "ping" }), 15000);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  close() {
    this.closed = true;
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000, "left");
  }
}

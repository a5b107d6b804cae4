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

/** What this server offers: ``{speak: ["vi", "en", "auto"?]}`` ("auto": detected per utterance). */
export async function serverConfig() {
  return (await request("GET", "/api/config")).json();
}

export async function createRoom() {
  return (await request("POST", "/api/rooms")).json();
}

export async function joinRoom(room, body) {
  return (await request("POST", `/api/rooms/${room}/join`, body)).json();
}

/** A waiting joiner's state in a locked room: ``{state: "waiting" | "declined"}``, or
 * ``{state: "admitted", ...}`` with what a join returns. */
export async function waitingState(room, waitToken) {
  return (await request("GET", `/api/rooms/${room}/waiting`, null, waitToken)).json();
}

/** A fresh token for a participant still in the room, in exchange for the current one (before
 * it expires): ``{token, expires_in, ice_servers}``. */
export async function renewToken(room, token) {
  return (await request("POST", `/api/rooms/${room}/token`, null, token)).json();
}

export async function transcript(room, format, token) {
  return (await request("GET", `/api/rooms/${room}/transcript?format=${format}`, null, token)).blob();
}

// Close codes after which reconnecting cannot help (signaling/ws.py, docs/protocol.md).
export const FINAL_CLOSE = { 4000: "expired", 4001: "removed", 4002: "ended", 4004: "expired",
  4005: "replaced", 4006: "expired" };

function socketUrl(room, token) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}` +
    `/ws/rooms/${room}?token=${encodeURIComponent(token)}`;
}

/** The participant WebSocket; reconnects with the same token after a drop (a network blip, a
 * signaling replica going away) until a close code says the seat is gone. ``renew`` swaps the
 * token: a new socket replaces the old one (which signaling closes with 4005), and its
 * ``welcome`` comes with ``renewed`` set so that the call keeps its media. */
export class Signal {
  constructor(room, token, onEvent, onState) {
    this.room = room;
    this.url = socketUrl(room, token);
    this.live = null; // the socket whose events count: the last one that got "welcome"
    this.renewing = false;
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
      if (msg.type === "welcome" && ws === this.ws) {
        this.live = ws;
        msg.renewed = this.renewing;
        this.renewing = false;
      } else if (ws !== this.live) {
        return; // the replaced socket, after its successor said welcome
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

  /** Continue with ``token`` (renewed before the old one expired) on a new socket. */
  renew(token) {
    this.url = socketUrl(this.room, token);
    if (this.closed) return;
    this.renewing = Boolean(this.live);
    this.connect();
  }

  send(msg) {
    const ws = this.live || this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  close() {
    this.closed = true;
    clearInterval(this.pinger);
    for (const ws of new Set([this.ws, this.live])) ws?.close(1000, "left");
  }
}

// The lobby: create a room and share its link; join with a name, languages and a preview of
// the camera and microphone (with device choice).
import { ApiError, createRoom, joinRoom, serverConfig, waitingState } from "./api.js";
import { t } from "./i18n.js";
import { listDevices, openLocalMedia, stopStream } from "./media.js";

const $ = (sel) => document.querySelector(sel);
const MESSAGES = { camera_denied: "cam_denied", mic_denied: "mic_denied", no_media: "no_media" };
const POLL_MS = 1500; // a waiting joiner asks this often (signaling allows 2 a second)

export class Lobby {
  constructor({ onJoined, onRoom }) {
    this.onJoined = onJoined;
    this.onRoom = onRoom;
    this.room = null;
    this.stream = null;
    this.problems = [];
    $("#create-btn").addEventListener("click", () => this.create());
    $("#copy-link").addEventListener("click", () => this.copy());
    $("#join-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.join();
    });
    $("#camera-select").addEventListener("change", () => this.preview());
    $("#mic-select").addEventListener("change", () => this.preview());
    this.previewing = Promise.resolve();
    this.seq = 0;
    for (const radio of document.querySelectorAll("input[name=speak]")) {
      radio.addEventListener("change", () => {
        if (radio.value !== "auto") this.check("captions", radio.value);
      });
    }
    // "Detect" only where stt can identify languages (signaling's speak_auto)
    serverConfig().then((c) => {
      for (const el of document.querySelectorAll(".detect-option")) el.hidden = !c.speak.includes("auto");
    }).catch(() => {});
  }

  /** Show the lobby for ``room`` (a room link) or, without one, the "create a room" card. */
  open(room, uiLang) {
    this.room = room;
    $("#create").hidden = Boolean(room);
    $("#join-form").hidden = !room;
    const hostKey = room && localStorage.getItem(`jb.host.${room}`);
    $("#share").hidden = !hostKey;
    if (hostKey) $("#room-link").value = `${location.origin}/r/${room}`;
    if (!room) return;
    const saved = JSON.parse(localStorage.getItem("jb.prefs") || "{}");
    $("#name").value = saved.name || "";
    this.check("speak", saved.speak || uiLang);
    this.check("captions", saved.captions || (saved.speak !== "auto" && saved.speak) || uiLang);
    $("#hear").checked = Boolean(saved.hear);
    $("#join-btn").disabled = false;
    this.preview();
  }

  check(name, value) {
    const input = document.querySelector(`input[name=${name}][value=${value}]`);
    if (input) input.checked = true;
  }

  async create() {
    const btn = $("#create-btn");
    btn.disabled = true;
    btn.textContent = t("creating");
    try {
      const made = await createRoom();
      localStorage.setItem(`jb.host.${made.room_id}`, made.host_key);
      this.onRoom(made.room_id);
    } catch (err) {
      $("#create-error").textContent = explain(err);
    } finally {
      btn.disabled = false;
      btn.textContent = t("create_btn");
    }
  }

  async copy() {
    const input = $("#room-link");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select(); // no clipboard permission: leave it selected for Ctrl+C
    }
    $("#copy-status").textContent = t("copied");
  }

  preview() {
    this.previewing = this.openPreview();
    return this.previewing;
  }

  async openPreview() {
    const seq = ++this.seq;
    stopStream(this.stream);
    this.stream = null;
    const { stream, problems } = await openLocalMedia({
      cameraId: $("#camera-select").value,
      micId: $("#mic-select").value,
    });
    if (seq !== this.seq) { // another device was chosen meanwhile
      stopStream(stream);
      return;
    }
    this.stream = stream;
    this.problems = problems;
    $("#preview").srcObject = stream;
    $("#preview").classList.toggle("off", stream.getVideoTracks().length === 0);
    $("#media-problems").textContent = problems
      .filter((p) => MESSAGES[p]).map((p) => t(MESSAGES[p])).join(" ");
    const { cameras, mics } = await listDevices();
    fill($("#camera-select"), cameras, stream.getVideoTracks()[0]);
    fill($("#mic-select"), mics, stream.getAudioTracks()[0]);
  }

  async join() {
    const name = $("#name").value.trim();
    const error = $("#join-error");
    if (!name || name.length > 60) {
      error.textContent = t("bad_name");
      $("#name").focus();
      return;
    }
    const prefs = {
      name,
      speak: document.querySelector("input[name=speak]:checked")?.value || "en",
      captions: document.querySelector("input[name=captions]:checked")?.value || "en",
      hear: $("#hear").checked,
    };
    localStorage.setItem("jb.prefs", JSON.stringify(prefs));
    await this.previewing; // join with the camera and microphone, not before they are open
    // A reload keeps the seat for a while (signaling holds it 60 s): take it again with the
    // same token rather than a second seat, which a full room would refuse.
    const resumed = savedSession(this.room);
    if (resumed && resumed.prefs.name === name) {
      const stream = this.stream || new MediaStream();
      this.stream = null;
      this.onJoined({ ...resumed, prefs }, stream, this.problems);
      return;
    }
    const btn = $("#join-btn");
    btn.disabled = true;
    btn.textContent = t("joining");
    error.textContent = "";
    try {
      let joined = await joinRoom(this.room, {
        name: prefs.name, speak: prefs.speak, captions: prefs.captions,
        hear_translation: prefs.hear,
        host_key: localStorage.getItem(`jb.host.${this.room}`) || undefined,
      });
      if (joined.waiting) joined = await this.wait(joined);
      if (!joined) return; // declined: the lobby says so
      const session = { ...joined, room: this.room, prefs,
        expires_at: Date.now() / 1000 + joined.expires_in };
      saveSession(session);
      const stream = this.stream || new MediaStream();
      this.stream = null; // the call owns it now
      this.onJoined(session, stream, this.problems);
    } catch (err) {
      error.textContent = explain(err);
      btn.focus();
    } finally {
      btn.disabled = false;
      btn.textContent = t("join_btn");
    }
  }

  /** A locked room: wait for a host's decision; what a join returns, or null when declined. */
  async wait(request) {
    const status = $("#wait-status");
    status.hidden = false;
    status.textContent = t("waiting_for_host");
    document.body.dataset.waiting = "1";
    try {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        let state;
        try {
          state = await waitingState(this.room, request.wait_token);
        } catch (err) {
          if (err instanceof ApiError && (err.status === 0 || err.status >= 500 ||
              err.code === "rate_limited")) continue; // the network or a busy server: ask again
          throw err;
        }
        if (state.state === "admitted") return state;
        if (state.state === "declined") {
          $("#join-error").textContent = t("declined");
          return null;
        }
      }
    } finally {
      status.hidden = true;
      delete document.body.dataset.waiting;
    }
  }

  stop() {
    stopStream(this.stream);
    this.stream = null;
  }
}

function savedSession(room) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(`jb.session.${room}`) || "null");
    return saved && saved.expires_at > Date.now() / 1000 + 60 ? saved : null;
  } catch {
    return null;
  }
}

/** Keep the session (token, seat) for a reload of this tab; again after each token renewal. */
export function saveSession(session) {
  sessionStorage.setItem(`jb.session.${session.room}`, JSON.stringify(session));
}

export function forgetSession(room) {
  sessionStorage.removeItem(`jb.session.${room}`);
}

function fill(select, devices, track) {
  const current = track?.getSettings().deviceId || select.value;
  select.replaceChildren();
  if (!devices.length) select.append(new Option(t("no_device"), ""));
  devices.forEach((d, i) => select.append(new Option(d.label || `${i + 1}`, d.deviceId)));
  if (current) select.value = current;
  select.disabled = !devices.length;
}

export function explain(err) {
  if (err instanceof ApiError) {
    if (["room_full", "room_not_found", "rate_limited", "network", "request_lapsed",
      "lobby_full"].includes(err.code)) {
      return t(err.code);
    }
    return `${t("join_failed")}: ${err.message}`;
  }
  return `${t("join_failed")}: ${err}`;
}

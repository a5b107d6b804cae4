// The call: the video grid, the controls, host actions, and the events of the room.
import { renewToken, Signal, transcript } from "./api.js";
import { SpeakingDetector, SpeechOut } from "./audio.js";
import { Captions } from "./captions.js";
import { Grid } from "./grid.js";
import { t } from "./i18n.js";
import { saveSession } from "./lobby.js";
import { MediaLink, stopStream } from "./media.js";
import { Meeting } from "./meeting.js";
import { TileVisibility } from "./visibility.js";

const $ = (sel) => document.querySelector(sel);
// Errors of a media negotiation (docs/protocol.md): worth another try, or to show.
const RETRYABLE = ["no_gateway", "gateway_unreachable", "gateway_error", "no_offer"];
const FATAL = ["gateway_full", "room_full", "bad_sdp"];

export class Call {
  constructor(session, stream, problems, onExit) {
    this.s = session;
    this.me = session.participant_id;
    this.host = session.role === "host";
    this.prefs = { ...session.prefs };
    this.stream = stream;
    this.camera = stream.getVideoTracks()[0] || null;
    this.problems = problems;
    this.onExit = onExit;
    this.abort = new AbortController(); // ends the page listeners of this call
    this.people = new Map();
    this.visibility = new TileVisibility({
      send: (m) => this.signal.send(m), paused: (pid, on) => this.grid.setPaused(pid, on),
      signal: this.abort.signal,
    });
    this.grid = new Grid($("#grid"), {
      me: this.me, host: this.host, camera: () => this.camera, watch: this.visibility,
      onMute: (pid, muted) => this.signal.send({ type: "mute", target: pid, muted }),
      onRemove: async (pid, name) => {
        if (await confirmDialog(t("confirm_remove", { name }))) {
          this.signal.send({ type: "remove", target: pid });
        }
      },
    });
    this.slots = [];
    this.link = null;
    this.screen = null;
    this.mutedSelf = !stream.getAudioTracks().length;
    this.ended = false;
    this.generation = 0; // of media negotiations
    this.mediaRetries = 0;
    this.sttDown = new Set(); // speakers whose captions are paused ("*": everyone's)
    this.sttBusy = new Set(); // speakers whose captions wait for speech recognition to have room
    this.captions = new Captions({
      log: $("#caption-log"), overlay: $("#overlay"), live: $("#caption-live"), jump: $("#jump"),
      myLang: () => this.prefs.captions, signal: this.abort.signal,
    });
    this.speech = new SpeechOut($("#speech-audio"), () => this.grid.remoteVideos());
    this.meeting = new Meeting({
      me: this.me, host: this.host, send: (m) => this.signal.send(m),
      myLang: () => this.prefs.captions, name: (pid) => this.people.get(pid)?.name || "",
      tile: (pid) => this.grid.tiles.get(pid)?.el, signal: this.abort.signal,
    });
    this.signal = new Signal(session.room, session.token, (m) => this.onEvent(m),
      (state, why) => this.onConnection(state, why));
  }

  start() {
    this.bindControls();
    this.resetCaptions();
    this.relabel();
    const mic = this.stream.getAudioTracks()[0];
    if (mic) {
      this.detector = new SpeakingDetector(mic, (on) => {
        this.signal.send({ type: "speaking", on });
        this.setSpeaking(this.me, on);
      });
    }
    if (this.problems.includes("camera_denied")) this.banner("media", t("cam_denied"));
    this.signal.connect();
    this.scheduleRenewal();
  }

  // ---- the token: renewed ahead of its expiry, silently (docs/protocol.md) -------------------
  scheduleRenewal() {
    // Ahead by a fifth of its lifetime, 10 s to 5 min: a background tab's timers may run late.
    const lead = Math.min(300, Math.max(10, (this.s.expires_in || 0) * 0.2));
    const wait = Math.max(1, (this.s.expires_at || 0) - lead - Date.now() / 1000);
    clearTimeout(this.renewer);
    this.renewer = setTimeout(() => this.renew(), Math.min(wait * 1000, 2 ** 31 - 1));
  }

  async renew() {
    if (this.ended) return;
    let fresh;
    try {
      fresh = await renewToken(this.s.room, this.s.token);
    } catch (err) {
      // 401/403: removed or no seat any more; the socket's close tells the person. Otherwise
      // (the network, a busy server) try again while the token lasts.
      if (![401, 403].includes(err.status) && this.s.expires_at > Date.now() / 1000 + 5) {
        this.renewer = setTimeout(() => this.renew(), 5000);
      }
      return;
    }
    if (this.ended) return;
    this.s = { ...this.s, token: fresh.token, expires_in: fresh.expires_in,
      expires_at: Date.now() / 1000 + fresh.expires_in, ice_servers: fresh.ice_servers };
    saveSession(this.s);
    this.signal.renew(fresh.token);
    this.scheduleRenewal();
  }

  resetCaptions() {
    const log = $("#caption-log");
    log.replaceChildren();
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.dataset.i18n = "no_captions";
    empty.textContent = t("no_captions");
    log.append(empty);
  }

  // ---- events from signaling -----------------------------------------------------------------
  onConnection(state, why) {
    if (state === "open") this.banner("conn", "");
    else if (state === "reconnecting") this.banner("conn", t("reconnecting"));
    else if (state === "closed") this.exit(why);
  }

  onEvent(m) {
    switch (m.type) {
      case "welcome":
        this.people = new Map(m.participants.filter((p) => p.connected || p.id === this.me)
          .map((p) => [p.id, p]));
        this.people.set(this.me, m.you);
        if (this.hostMutedBy()) { // a reload keeps a host mute: the microphone stays off
          for (const track of this.stream.getAudioTracks()) track.enabled = false;
          this.mutedSelf = true;
          this.showHostMute();
          this.relabel();
        }
        this.syncSettings(m.you);
        this.meeting.setLocked(Boolean(m.locked));
        this.meeting.hands(m.hands || []);
        this.render();
        // A socket swapped for a renewed token: the gateway kept this page's peer connection.
        if (!(m.renewed && this.link)) this.negotiate();
        break;
      case "joined":
        break; // a seat taken; the tile comes with "present", when their page connects
      case "present":
      case "settings":
        this.people.set(m.participant.id, m.participant);
        if (m.participant.id === this.me) this.prefs = { ...this.prefs, ...pick(m.participant) };
        this.captions.rename(m.participant.id, m.participant.name);
        this.render();
        break;
      case "left":
        this.people.delete(m.participant);
        this.sttDown.delete(m.participant);
        this.render();
        break;
      case "speaking":
        this.setSpeaking(m.participant, m.on);
        break;
      case "muted":
        this.onMuted(m);
        break;
      case "removed":
        if (m.participant === this.me) this.exit("removed");
        else {
          this.people.delete(m.participant);
          this.render();
        }
        break;
      case "ended":
        this.exit("ended");
        break;
      case "chat":
        this.meeting.chat(m);
        break;
      case "hands":
        this.meeting.hands(m.queue);
        break;
      case "reaction":
        this.meeting.reaction(m);
        break;
      case "locked":
        this.meeting.setLocked(m.locked);
        break;
      case "waiting":
        this.meeting.setWaiting(m.waiting);
        break;
      case "caption":
        this.captions.add(m);
        if (m.kind === "partial") this.setActive(m.speaker);
        break;
      case "captions_status":
        this.captionsStatus(m);
        break;
      case "speech_status":
        this.banner("speech", m.state === "unavailable" ? t("speech_down") : "");
        break;
      case "speech":
        if ((m.listeners || []).includes(this.me)) this.speech.duck(m.duration_ms || 0);
        break;
      case "media_slots":
        this.slots = m.slots;
        this.attachMedia();
        break;
      case "sdp":
        this.offerPending = false;
        this.answer(m.sdp);
        break;
      case "media_ready":
        this.banner("media", this.problems.includes("camera_denied") ? t("cam_denied") : "");
        this.visibility.connected(); // the new connection forwards every video: say what is hidden
        break;
      case "media_reconnect": // the gateway restarted or went away (docs/protocol.md)
        this.banner("media", t("media_reconnecting"));
        setTimeout(() => !this.ended && this.negotiate(), Math.min(m.retry_ms || 0, 10000));
        break;
      case "error":
        this.meeting.refuse(m);
        if (FATAL.includes(m.code) || RETRYABLE.includes(m.code)) this.offerPending = false;
        if (/\bvideo_visibility\b/.test(m.message || "")) this.visibility.retry();
        if (m.code === "muted_by_host") this.showHostMute();
        else if (RETRYABLE.includes(m.code) && this.mediaRetries < 8) this.retryMedia();
        // The offer request was over the socket's limit (the message names the refused type:
        // docs/protocol.md, "Sessions and limits"): ask again later.
        else if (m.code === "rate_limited" && this.offerPending && this.mediaRetries < 8 &&
                 /\bmedia_offer\b/.test(m.message || "")) {
          this.retryMedia();
        } else if (FATAL.includes(m.code) || RETRYABLE.includes(m.code)) {
          this.banner("media", `${t("media_failed")} ${m.message}`);
        }
        break;
      default:
        break;
    }
  }

  /** A resumed seat keeps the languages it was joined with: send what the form says now. */
  syncSettings(you) {
    const want = { speak: this.prefs.speak, captions: this.prefs.captions,
      hear_translation: Boolean(this.prefs.hear), muted: this.mutedSelf };
    const changed = Object.fromEntries(Object.entries(want).filter(([k, v]) => you[k] !== v));
    if (Object.keys(changed).length) this.signal.send({ type: "settings", settings: changed });
  }

  captionsStatus(m) {
    const who = m.speaker || "*";
    this.sttBusy.delete(who);
    if (m.state === "unavailable") this.sttDown.add(who);
    else if (m.state === "busy") this.sttDown.delete(who), this.sttBusy.add(who);
    else if (m.speaker) this.sttDown.delete(m.speaker);
    else this.sttDown.clear(), this.sttBusy.clear();
    this.showCaptionsStatus();
  }

  showCaptionsStatus() {
    const names = [...this.sttDown].map((pid) => this.people.get(pid)?.name).filter(Boolean);
    let text = "";
    if (this.sttDown.has("*") || (this.sttDown.size && !names.length)) text = t("captions_down");
    else if (names.length) text = t("captions_down_for", { names: names.join(", ") });
    const busy = [...this.sttBusy].map((pid) => this.people.get(pid)?.name).filter(Boolean);
    const wait = busy.length ? t("captions_busy_for", { names: busy.join(", ") }) : t("captions_busy");
    if (this.sttBusy.size) text = [text, wait].filter(Boolean).join(" ");
    this.banner("captions", text);
  }

  // ---- media ---------------------------------------------------------------------------------
  negotiate() {
    this.offerPending = true;
    this.signal.send({ type: "media_offer" });
  }

  async answer(sdp) {
    // Each offer replaces the gateway's peer connection for this page: only the answer to the
    // latest offer may be sent (an older one would not match the gateway's connection).
    const gen = ++this.generation;
    if (this.link) this.link.close();
    const link = (this.link = new MediaLink(this.s.ice_servers || []));
    link.pc.addEventListener("connectionstatechange", () => {
      if (link.pc.connectionState === "failed" && link === this.link) this.retryMedia();
      if (link.pc.connectionState === "connected") this.mediaRetries = 0;
    });
    try {
      const answer = await link.answer(sdp, this.sending());
      if (gen !== this.generation) return;
      this.signal.send({ type: "sdp", sdp: answer });
      this.attachMedia();
    } catch (err) {
      if (gen === this.generation) this.banner("media", `${t("media_failed")} ${err.message || err}`);
    }
  }

  /** The connection to the gateway failed (ICE or DTLS): negotiate again, backing off. */
  retryMedia() {
    this.banner("media", t("media_reconnecting"));
    const delay = Math.min(500 * 2 ** this.mediaRetries, 8000);
    this.mediaRetries += 1;
    setTimeout(() => !this.ended && this.negotiate(), delay);
  }

  sending() {
    const tracks = [...this.stream.getAudioTracks()];
    const video = this.screen || this.camera;
    if (video) tracks.push(video);
    return new MediaStream(tracks);
  }

  attachMedia() {
    if (!this.link) return;
    for (const slot of this.slots) {
      const tile = this.grid.tiles.get(slot.participant);
      if (!tile) continue;
      const tracks = [this.link.track(slot.video_mid), this.link.track(slot.audio_mid)].filter(Boolean);
      const current = tile.video.srcObject?.getTracks() || [];
      if (tracks.length && !tracks.every((tr) => current.includes(tr))) {
        tile.video.srcObject = new MediaStream(tracks);
        tile.video.play().catch(() => {});
      }
    }
    this.speech.attach(this.link.speechTrack());
    this.speech.apply();
  }

  // ---- the grid ------------------------------------------------------------------------------
  render() {
    this.grid.sync(this.people, this.mutedSelf);
    $("#people-count").textContent = t("people", { n: this.grid.tiles.size });
    this.showCaptionsStatus();
    this.meeting.renderHands();
    this.attachMedia();
  }

  setSpeaking(pid, on) {
    if (this.grid.setSpeaking(pid, on) && on) this.setActive(pid);
  }

  setActive(pid) {
    this.grid.setActive(pid);
  }

  /** A host muted someone, or lifted a host mute (``m.muted`` false). A host mute is enforced
   * by the server (docs/security.md, "Host mute"): only a host can lift it. */
  onMuted(m) {
    const person = this.people.get(m.participant);
    const muted = m.muted !== false;
    if (person) {
      person.muted = muted;
      person.muted_by = muted ? m.by : "";
    }
    if (m.participant === this.me) {
      if (muted) {
        this.setMic(false);
        this.showHostMute();
      } else {
        this.banner("media", t("host_unmuted", { name: this.nameOf(m.by) }));
        this.relabel();
      }
    }
    this.render();
  }

  /** Who muted me, when it was a host (not me); "" otherwise. */
  hostMutedBy() {
    const me = this.people.get(this.me);
    return me && me.muted && me.muted_by && me.muted_by !== this.me ? me.muted_by : "";
  }

  nameOf(pid) {
    return this.people.get(pid)?.name || t("host");
  }

  showHostMute() {
    this.banner("media", t("muted_by_host", { name: this.nameOf(this.hostMutedBy()) }));
  }

  // ---- controls ------------------------------------------------------------------------------
  bindControls() {
    const on = (sel, fn) => $(sel).addEventListener("click", fn, { signal: this.abort.signal });
    on("#btn-mic", () => this.setMic(this.mutedSelf));
    on("#btn-cam", () => this.setCamera(!(this.camera && this.camera.enabled)));
    on("#btn-share", () => (this.screen ? this.stopShare() : this.share()));
    on("#btn-leave", () => this.exit("left"));
    on("#btn-end", async () => {
      if (await confirmDialog(t("confirm_end"))) this.signal.send({ type: "end" });
    });
    on("#dl-txt", () => this.download("txt"));
    on("#dl-vtt", () => this.download("vtt"));
    const opts = { signal: this.abort.signal };
    $("#btn-end").hidden = !this.host;
    $("#btn-share").hidden = !navigator.mediaDevices?.getDisplayMedia;
    $("#call-speak").value = this.prefs.speak;
    $("#call-speak").addEventListener("change", (e) => {
      // the gateway hands the stt stream over: the next caption is in the new language
      this.prefs.speak = e.target.value;
      this.signal.send({ type: "settings", settings: { speak: e.target.value } });
    }, opts);
    $("#call-captions").value = this.prefs.captions;
    $("#call-hear").checked = Boolean(this.prefs.hear);
    $("#call-captions").addEventListener("change", (e) => {
      this.prefs.captions = e.target.value;
      this.signal.send({ type: "settings", settings: { captions: e.target.value } });
    }, opts);
    $("#call-hear").addEventListener("change", (e) => {
      this.prefs.hear = e.target.checked;
      this.signal.send({ type: "settings", settings: { hear_translation: e.target.checked } });
    }, opts);
    $("#speech-volume").addEventListener("input", (e) => this.speech.setVolume(e.target.value / 100), opts);
    $("#duck-level").addEventListener("input", (e) => this.speech.setDuck(e.target.value / 100), opts);
    this.speech.setVolume($("#speech-volume").value / 100);
    this.speech.setDuck($("#duck-level").value / 100);
  }

  relabel() {
    const mic = $("#btn-mic");
    mic.textContent = this.mutedSelf ? t("mic_on") : t("mic_off");
    mic.setAttribute("aria-pressed", String(this.mutedSelf));
    mic.disabled = !this.stream.getAudioTracks().length || Boolean(this.hostMutedBy());
    const cam = $("#btn-cam");
    const camOn = Boolean(this.camera && this.camera.enabled);
    cam.textContent = this.camera ? (camOn ? t("cam_off") : t("cam_on")) : t("cam_unavailable");
    cam.setAttribute("aria-pressed", String(!camOn));
    cam.disabled = !this.camera;
    const share = $("#btn-share");
    share.textContent = this.screen ? t("share_stop") : t("share");
    share.setAttribute("aria-pressed", String(Boolean(this.screen)));
    this.grid.relabel();
    this.meeting.relabel();
    this.render();
  }

  setMic(on) {
    if (on && this.hostMutedBy()) {
      this.showHostMute();
      return;
    }
    for (const track of this.stream.getAudioTracks()) track.enabled = on;
    this.mutedSelf = !on;
    if (on && this.people.get(this.me)) this.people.get(this.me).muted = false;
    this.signal.send({ type: "settings", settings: { muted: !on } });
    if (on) this.banner("media", "");
    this.relabel();
  }

  setCamera(on) {
    if (!this.camera) return;
    this.camera.enabled = on;
    this.grid.tiles.get(this.me)?.el.classList.toggle("has-video", on || Boolean(this.screen));
    this.relabel();
  }

  async share() {
    try {
      const display = await navigator.mediaDevices.getDisplayMedia({ video: true });
      this.screen = display.getVideoTracks()[0];
      // Text on a screen must stay legible: under load, drop frames rather than resolution.
      this.screen.contentHint = "detail";
    } catch {
      return; // the person cancelled the picker
    }
    this.screen.addEventListener("ended", () => this.stopShare());
    await this.link?.sendVideo(this.screen);
    this.showSelf(this.screen);
    this.relabel();
  }

  async stopShare() {
    if (!this.screen) return;
    this.screen.stop();
    this.screen = null;
    await this.link?.sendVideo(this.camera);
    this.showSelf(this.camera);
    this.relabel();
  }

  showSelf(track) {
    this.grid.showSelf(track, Boolean(this.screen));
  }

  async download(format) {
    try {
      const blob = await transcript(this.s.room, format, this.s.token);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `transcript-${this.s.room.slice(0, 8)}.${format}`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) {
      this.banner("media", `${t("join_failed")}: ${err.message}`);
    }
  }

  banner(which, text) {
    const el = $(`#banner-${which}`);
    el.textContent = text;
    el.hidden = !text;
  }

  exit(reason) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.renewer);
    this.signal.close();
    this.link?.close();
    this.detector?.stop();
    this.screen?.stop();
    stopStream(this.stream);
    this.abort.abort();
    this.visibility.stop();
    this.grid.clear();
    this.meeting.clear();
    for (const which of ["conn", "captions", "speech", "media"]) this.banner(which, "");
    $("#people-count").textContent = "";
    this.onExit(reason);
  }
}

function pick(p) {
  return { speak: p.speak, captions: p.captions, hear: p.hear_translation };
}

/** Ask a yes/no question in the page's <dialog>; resolves true for yes. */
export function confirmDialog(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  if (dialog.open) dialog.close("cancel");
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

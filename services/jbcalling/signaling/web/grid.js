// The video grid: one tile per participant (video, initials when there is no picture, name,
// host / muted / speaking badges) and, for the host, mute and remove buttons on the others.
import { colourOf } from "./captions.js";
import { t } from "./i18n.js";

export class Grid {
  /** ``me``: this participant's id; ``host``: whether to show host actions; ``camera()``: the
   * local camera track or null; ``onMute(pid)``, ``onRemove(pid, name)``: host actions;
   * ``watch`` (``watch(pid, el)``, ``unwatch(el)``): told of every remote tile (visibility.js). */
  constructor(el, { me, host, camera, onMute, onRemove, watch }) {
    this.el = el;
    this.me = me;
    this.host = host;
    this.camera = camera;
    this.onMute = onMute;
    this.onRemove = onRemove;
    this.watch = watch;
    this.tiles = new Map();
    this.names = new Map();
  }

  /** Make the tiles match ``people`` (id -> participant); ``mutedSelf``: my microphone is off. */
  sync(people, mutedSelf) {
    for (const [pid, tile] of this.tiles) {
      if (!people.has(pid)) {
        this.watch?.unwatch(tile.el);
        tile.el.remove();
        this.tiles.delete(pid);
      }
    }
    for (const person of people.values()) {
      this.names.set(person.id, person.name);
      const tile = this.tiles.get(person.id) || this.add(person);
      tile.name.textContent = person.id === this.me ? `${person.name} (${t("you")})` : person.name;
      tile.role.hidden = person.role !== "host";
      const muted = person.id === this.me ? mutedSelf || person.muted : person.muted;
      tile.muted.hidden = !muted;
      tile.el.classList.toggle("is-muted", Boolean(muted));
      // a host mute says who: the server enforces it (only a host lifts it)
      tile.hostMuted = muted && person.muted_by && person.muted_by !== person.id ? person.muted_by : "";
      tile.muted.textContent = tile.hostMuted
        ? t("muted_by", { name: this.names.get(tile.hostMuted) || t("host") }) : t("muted");
      tile.muted.classList.toggle("by-host", Boolean(tile.hostMuted));
      tile.relabel?.();
    }
    this.el.dataset.count = String(Math.min(this.tiles.size, 6));
  }

  add(person) {
    const el = document.createElement("div");
    el.className = "tile";
    el.setAttribute("role", "listitem");
    el.dataset.pid = person.id;
    el.style.setProperty("--who", colourOf(person.id));
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = initials(person.name);
    const tag = document.createElement("div");
    tag.className = "tag";
    const name = document.createElement("span");
    name.className = "name";
    const role = badge("host", "role");
    const muted = badge("muted", "muted");
    const speaking = badge("speaking", "speaking");
    tag.append(name, role, muted, speaking);
    el.append(video, avatar, tag);
    const tile = { el, video, name, role, muted, speaking, relabel: null };
    const camera = this.camera();
    if (person.id === this.me) {
      el.classList.add("self");
      video.muted = true;
      video.srcObject = new MediaStream(camera ? [camera] : []);
    } else {
      el.classList.add("remote");
      if (this.host) el.append(this.hostActions(person.id, tile));
      this.watch?.watch(person.id, el);
    }
    video.addEventListener("resize", () => el.classList.toggle("has-video", video.videoWidth > 0));
    el.classList.toggle("has-video", person.id === this.me && Boolean(camera));
    // Order: me first, then in order of arrival.
    if (person.id === this.me) this.el.prepend(el);
    else this.el.append(el);
    this.tiles.set(person.id, tile);
    return tile;
  }

  hostActions(pid, tile) {
    const box = document.createElement("div");
    box.className = "host-actions";
    // a host mute is lifted by a host; a participant's own mute is theirs alone
    const mute = button("small", () => this.onMute(pid, !tile.hostMuted));
    const remove = button("small danger", () => this.onRemove(pid, this.names.get(pid)));
    tile.relabel = () => {
      const name = this.names.get(pid) || "";
      const label = tile.hostMuted ? t("unmute_person") : t("mute_person");
      mute.textContent = label;
      mute.setAttribute("aria-label", `${label} ${name}`);
      remove.textContent = t("remove_person");
      remove.setAttribute("aria-label", `${t("remove_person")} ${name}`);
    };
    box.append(mute, remove);
    return box;
  }

  setSpeaking(pid, on) {
    const tile = this.tiles.get(pid);
    if (!tile) return false;
    tile.el.classList.toggle("speaking", on);
    tile.speaking.hidden = !on;
    return true;
  }

  /** ``on``: the gateway does not send this tile's video (it is off screen): show the initials,
   * never a frozen picture. Off: show the video again from its next frame (the keyframe the
   * gateway asked for). */
  setPaused(pid, on) {
    const tile = this.tiles.get(pid);
    if (!tile) return;
    tile.resumed = on ? null : {};
    if (on || !tile.video.requestVideoFrameCallback) {
      tile.el.classList.toggle("paused", on);
      return;
    }
    const resumed = tile.resumed;
    tile.video.requestVideoFrameCallback(() => {
      if (tile.resumed === resumed) tile.el.classList.remove("paused");
    });
  }

  setActive(pid) {
    for (const [id, tile] of this.tiles) tile.el.classList.toggle("active", id === pid);
  }

  /** My tile shows ``track`` (the camera, or the screen while sharing). */
  showSelf(track, sharing) {
    const tile = this.tiles.get(this.me);
    if (!tile) return;
    tile.video.srcObject = new MediaStream(track ? [track] : []);
    tile.el.classList.toggle("has-video", Boolean(track));
    tile.el.classList.toggle("sharing", sharing);
  }

  /** The media elements playing the other participants (their voices: for ducking). */
  remoteVideos() {
    return [...this.tiles.entries()].filter(([pid]) => pid !== this.me).map(([, tile]) => tile.video);
  }

  relabel() {
    for (const tile of this.tiles.values()) {
      tile.relabel?.();
      for (const b of tile.el.querySelectorAll(".badge")) b.textContent = t(b.dataset.key);
    }
  }

  clear() {
    for (const tile of this.tiles.values()) {
      this.watch?.unwatch(tile.el);
      tile.el.remove();
    }
    this.tiles.clear();
  }
}

function button(cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

function badge(key, cls) {
  const b = document.createElement("span");
  b.className = `badge ${cls}`;
  b.dataset.key = key;
  b.textContent = t(key);
  b.hidden = true;
  return b;
}

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

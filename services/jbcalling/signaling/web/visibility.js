// Which of the others' tiles this page shows, told to the gateway so that it forwards only the
// video someone can see (docs/web-client.md, "Video of tiles you cannot see").
//
// A remote tile is hidden when no part of it is on screen (an IntersectionObserver on the
// viewport: a tile scrolled away in the grid or, on a phone, above the captions and chat the
// person scrolled down to read) or when the whole tab is in the background. The set goes to
// signaling as ``video_visibility`` when it changes (a tile that leaves the screen after
// ``HIDE_DELAY_MS``, so that scrolling past does not pause and resume it; a tile that comes back
// at once) and again after every ``media_ready`` (a new peer connection starts with every video
// flowing). Audio is never paused: a hidden participant is still heard.
//
// The gateway answers a tile shown again with a keyframe from its source; until that frame is
// on screen the tile shows the participant's initials, never a frozen picture (``paused``).

const HIDE_DELAY_MS = 300;
const SHOW_DELAY_MS = 30; // one observer callback's changes go out as one message
const RETRY_MS = 1000;

export class TileVisibility {
  /** ``send(msg)``: to signaling; ``paused(pid, on)``: show the tile's initials (on) or its
   * video again from its next frame (off); ``signal``: ends the listeners with the call. */
  constructor({ send, paused, signal }) {
    this.send = send;
    this.paused = paused;
    this.tiles = new Map(); // remote tile element -> participant id
    this.offscreen = new Set(); // participant ids of tiles with no pixel on screen
    // the hidden list the gateway has (sorted, joined); null: no media connection yet (nothing to
    // pause until the first media_ready); "?": unknown (the last list was refused)
    this.sent = null;
    this.shownPaused = new Set(); // participant ids whose tiles show initials for now
    this.timer = null;
    this.observer = new IntersectionObserver((entries) => this.seen(entries));
    document.addEventListener("visibilitychange", () => this.schedule(), { signal });
  }

  /** Watch ``el``, the tile of participant ``pid`` (another participant, never this page's). */
  watch(pid, el) {
    this.tiles.set(el, pid);
    this.observer.observe(el);
  }

  /** The tile is gone (the participant left): it no longer counts. */
  unwatch(el) {
    const pid = this.tiles.get(el);
    if (pid === undefined) return;
    this.tiles.delete(el);
    this.observer.unobserve(el);
    this.offscreen.delete(pid);
    this.shownPaused.delete(pid);
    this.schedule();
  }

  seen(entries) {
    for (const entry of entries) {
      const pid = this.tiles.get(entry.target);
      if (pid === undefined) continue;
      if (entry.isIntersecting) this.offscreen.delete(pid);
      else this.offscreen.add(pid);
    }
    this.schedule();
  }

  hidden() {
    const all = [...this.tiles.values()];
    return (document.visibilityState === "hidden" ? all : all.filter((p) => this.offscreen.has(p)))
      .sort();
  }

  schedule(delay) {
    const gone = this.hidden().some((pid) => !(this.sent || "").split(",").includes(pid));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), delay ?? (gone ? HIDE_DELAY_MS : SHOW_DELAY_MS));
  }

  flush() {
    const hidden = this.hidden();
    for (const pid of hidden) {
      if (!this.shownPaused.has(pid)) this.paused(pid, true);
      this.shownPaused.add(pid);
    }
    for (const pid of this.shownPaused) {
      if (hidden.includes(pid)) continue;
      this.shownPaused.delete(pid);
      this.paused(pid, false);
    }
    const key = hidden.join(",");
    if (key === this.sent || this.sent === null) return; // null: no media yet, or refused
    this.sent = key;
    this.send({ type: "video_visibility", hidden });
  }

  /** A new peer connection is up (``media_ready``): the gateway forwards every video to it. */
  connected() {
    this.sent = "";
    this.schedule(0);
  }

  /** Signaling refused the last list (rate limit; a participant who just left): send again. */
  retry() {
    this.sent = "?";
    this.schedule(RETRY_MS);
  }

  stop() {
    clearTimeout(this.timer);
    this.observer.disconnect();
    this.tiles.clear();
  }
}

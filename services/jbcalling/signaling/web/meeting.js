// Chat (each message in the reader's caption language, the original a click away), raised
// hands (the queue in order), reactions on the tiles, and the host's lock and waiting room.
import { colourOf } from "./captions.js";
import { t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
// protocol.REACTIONS: the server refuses any other
export const REACTIONS = ["👍", "👏", "😂", "❤️", "🎉", "😮"];
const REACTION_MS = 3000;
const MAX_MESSAGES = 300;

export class Meeting {
  /** ``send(msg)``: to signaling; ``myLang()``: the reader's caption language; ``names(pid)``,
   * ``tile(pid)``: the grid's; ``signal``: ends the listeners with the call. */
  constructor({ me, host, send, myLang, name, tile, signal }) {
    Object.assign(this, { me, host, send, myLang, name, tile });
    this.queue = [];
    this.locked = false;
    this.waiting = [];
    this.messages = [];
    const opts = { signal };
    $("#chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("#chat-text").value.trim();
      if (!text) return;
      this.send({ type: "chat", text });
      $("#chat-text").value = "";
      $("#chat-error").textContent = "";
    }, opts);
    $("#btn-hand").addEventListener("click", () => {
      this.send({ type: "hand", raised: !this.queue.includes(this.me) });
    }, opts);
    $("#btn-lock").hidden = !host;
    $("#btn-lock").addEventListener("click", () => this.send({ type: "lock", locked: !this.locked }), opts);
    const box = $("#reactions");
    box.replaceChildren(...REACTIONS.map((emoji) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = emoji;
      b.setAttribute("aria-label", `${t("reactions")}: ${emoji}`);
      b.addEventListener("click", () => this.send({ type: "react", emoji }), opts);
      return b;
    }));
    $("#chat-log").replaceChildren(empty());
    this.relabel();
  }

  // ---- chat ----------------------------------------------------------------------------------
  chat(m) {
    $("#chat-log .empty")?.remove();
    const el = document.createElement("div");
    el.className = "chat-msg";
    el.dataset.id = m.id;
    el.dataset.sender = m.sender;
    el.style.setProperty("--who", colourOf(m.sender));
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.sender_name;
    const text = document.createElement("p");
    text.className = "text";
    el.append(who, text);
    const msg = { m, el, text, showOriginal: false };
    this.messages.push(msg);
    if (this.messages.length > MAX_MESSAGES) this.messages.shift().el.remove();
    this.show(msg);
    const log = $("#chat-log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    log.append(el);
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  /** One message in the reader's caption language, or the original (marked untranslated). */
  show(msg) {
    const { m, el, text } = msg;
    const mine = this.myLang();
    const translated = m.lang !== mine ? (m.translations || {})[mine] : "";
    const original = msg.showOriginal || !translated;
    text.textContent = original ? m.text : translated;
    text.lang = original ? m.lang : mine;
    el.dataset.shown = original ? "original" : "translation";
    el.querySelector(".mark")?.remove();
    el.querySelector("button")?.remove();
    if (m.lang !== mine && !translated) {
      const mark = document.createElement("span");
      mark.className = "mark";
      mark.textContent = t("untranslated");
      el.append(mark);
    } else if (translated) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "small";
      toggle.textContent = msg.showOriginal ? t("show_translation") : t("show_original");
      toggle.addEventListener("click", () => {
        msg.showOriginal = !msg.showOriginal;
        this.show(msg);
      });
      el.append(toggle);
    }
  }

  refuse(m) {
    const known = { too_long: "chat_too_long", chat_failed: "chat_failed" };
    if (known[m.code]) $("#chat-error").textContent = t(known[m.code]);
    else if (m.code === "rate_limited" && /\b(chat|react|hand)\b/.test(m.message || "")) {
      $("#chat-error").textContent = t("slow_down");
    }
  }

  // ---- hands and reactions -------------------------------------------------------------------
  hands(queue) {
    this.queue = queue;
    this.renderHands();
  }

  renderHands() {
    const list = $("#hands");
    const shown = this.queue.filter((pid) => this.name(pid));
    list.replaceChildren(...shown.map((pid) => {
      const li = document.createElement("li");
      li.dataset.pid = pid;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = this.name(pid);
      li.append(name);
      if (this.host && pid !== this.me) {
        const lower = document.createElement("button");
        lower.type = "button";
        lower.className = "small";
        lower.textContent = t("lower_hand_of");
        lower.setAttribute("aria-label", `${t("lower_hand_of")}: ${this.name(pid)}`);
        lower.addEventListener("click", () => this.send({ type: "hand", raised: false, target: pid }));
        li.append(lower);
      }
      return li;
    }));
    $("#hands-box").hidden = !shown.length;
    for (const pid of this.tilePids()) {
      const tile = this.tile(pid);
      let badge = tile.querySelector(".badge.hand");
      const place = shown.indexOf(pid);
      if (place < 0) {
        badge?.remove();
        continue;
      }
      if (!badge) {
        badge = document.createElement("span");
        badge.className = "badge hand";
        tile.querySelector(".tag")?.append(badge);
      }
      badge.textContent = `✋ ${t("hand_badge", { n: place + 1 })}`;
    }
    this.relabel();
  }

  tilePids() {
    return [...document.querySelectorAll("#grid .tile")].map((el) => el.dataset.pid);
  }

  reaction(m) {
    const tile = this.tile(m.participant);
    if (!tile || !REACTIONS.includes(m.emoji)) return;
    const el = document.createElement("span");
    el.className = "reaction";
    el.textContent = m.emoji;
    el.setAttribute("aria-hidden", "true");
    tile.querySelector(".reaction")?.remove();
    tile.append(el);
    setTimeout(() => el.remove(), REACTION_MS);
  }

  // ---- lock and waiting room -----------------------------------------------------------------
  setLocked(locked) {
    this.locked = locked;
    const banner = $("#banner-lock");
    banner.textContent = locked ? t("room_locked") : "";
    banner.hidden = !locked;
    this.relabel();
  }

  setWaiting(waiting) {
    this.waiting = waiting;
    if (!this.host) return; // only hosts admit
    $("#waiting").replaceChildren(...waiting.map((w) => {
      const li = document.createElement("li");
      li.dataset.request = w.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = w.name;
      const admit = document.createElement("button");
      admit.type = "button";
      admit.className = "small";
      admit.textContent = t("admit");
      admit.setAttribute("aria-label", `${t("admit")} ${w.name}`);
      admit.addEventListener("click", () => this.send({ type: "admit", request: w.id, admit: true }));
      const decline = document.createElement("button");
      decline.type = "button";
      decline.className = "small danger";
      decline.textContent = t("decline");
      decline.setAttribute("aria-label", `${t("decline")} ${w.name}`);
      decline.addEventListener("click", () => this.send({ type: "admit", request: w.id, admit: false }));
      li.append(name, admit, decline);
      return li;
    }));
    $("#waiting-box").hidden = !waiting.length;
  }

  relabel() {
    const raised = this.queue.includes(this.me);
    const hand = $("#btn-hand");
    hand.textContent = raised ? t("hand_lower") : t("hand_raise");
    hand.setAttribute("aria-pressed", String(raised));
    const lock = $("#btn-lock");
    lock.textContent = this.locked ? t("unlock") : t("lock");
    lock.setAttribute("aria-pressed", String(this.locked));
    for (const msg of this.messages) this.show(msg);
    if (this.host && this.waiting.length) this.setWaiting(this.waiting); // in the new language
  }

  clear() {
    for (const id of ["#banner-lock", "#hands-box", "#waiting-box"]) $(id).hidden = true;
    $("#btn-lock").hidden = true;
  }
}

function empty() {
  const p = document.createElement("p");
  p.className = "empty";
  p.dataset.i18n = "no_chat";
  p.textContent = t("no_chat");
  return p;
}

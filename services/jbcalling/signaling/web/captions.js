// Captions: a log panel and an overlay. One entry per (speaker, segment): the partial text is
// replaced in place by the final one, and the translation fills the entry's second line.
import { t } from "./i18n.js";

// Readable on the dark panel (contrast over 7:1 on #14181d).
const COLOURS = ["#7cc4ff", "#ffb86b", "#8be28b", "#ff9ecf", "#c9a7ff", "#ffe066"];
const MAX_ENTRIES = 400;

export function colourOf(pid) {
  let h = 0;
  for (const c of pid) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return COLOURS[h % COLOURS.length];
}

export class Captions {
  /** ``myLang()``: the caption language this participant chose; ``signal`` ends the
   * listeners when the call ends. */
  constructor({ log, overlay, live, jump, myLang, signal }) {
    this.log = log;
    this.overlay = overlay;
    this.live = live;
    this.jump = jump;
    this.myLang = myLang;
    this.entries = new Map();
    this.recent = [];
    this.follow = true;
    this.fade = null;
    log.addEventListener("scroll", () => {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
      this.follow = atEnd;
      jump.hidden = atEnd;
    }, { signal });
    jump.addEventListener("click", () => {
      this.follow = true;
      jump.hidden = true;
      this.scroll();
      log.focus();
    }, { signal });
  }

  /** A ``caption`` event from signaling (kind partial | final | translation). */
  add(ev) {
    const key = `${ev.speaker}|${ev.segment}`;
    const entry = this.entries.get(key) || this.create(key, ev);
    const mine = this.myLang();
    if (ev.kind === "partial" || ev.kind === "final") {
      if (entry.final && ev.kind === "partial") return; // a late partial never undoes a final
      entry.final = entry.final || ev.kind === "final";
      if (entry.original.textContent !== ev.text) entry.original.textContent = ev.text;
      entry.el.dataset.state = entry.final ? "final" : "partial";
      if (entry.final && ev.lang === mine) this.announce(entry, ev.text);
    } else if (ev.kind === "translation") {
      if (ev.lang === mine) return; // the original is already in this reader's language
      const text = (ev.translations || {})[mine];
      if (text) {
        entry.translation.textContent = text;
        entry.translation.classList.remove("unavailable");
        entry.el.dataset.state = "translated";
        this.announce(entry, text);
      } else if (ev.translation_error) {
        entry.translation.textContent = t("translation_unavailable");
        entry.translation.classList.add("unavailable");
        entry.el.dataset.state = "untranslated";
      }
    }
    this.showOverlay(entry);
    if (this.follow) this.scroll();
  }

  create(key, ev) {
    this.log.querySelector(".empty")?.remove();
    const el = document.createElement("div");
    el.className = "cap";
    el.dataset.speaker = ev.speaker;
    el.dataset.segment = ev.segment;
    el.style.setProperty("--who", colourOf(ev.speaker));
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = ev.speaker_name || "?";
    const original = document.createElement("p");
    original.className = "orig";
    original.lang = ev.lang;
    const translation = document.createElement("p");
    translation.className = "trans";
    translation.lang = ev.lang === "vi" ? "en" : "vi";
    el.append(who, original, translation);
    this.log.append(el);
    const entry = { key, el, who, original, translation, final: false };
    this.entries.set(key, entry);
    while (this.entries.size > MAX_ENTRIES) {
      const [oldest, old] = this.entries.entries().next().value;
      old.el.remove();
      this.entries.delete(oldest);
    }
    return entry;
  }

  showOverlay(entry) {
    this.recent = [entry, ...this.recent.filter((e) => e !== entry)].slice(0, 2);
    const lines = this.recent.slice().reverse().map((e) => {
      const line = document.createElement("p");
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = `${e.who.textContent}: `;
      line.style.setProperty("--who", e.el.style.getPropertyValue("--who"));
      const translated = e.translation.textContent && !e.translation.classList.contains("unavailable");
      line.append(who, translated ? e.translation.textContent : e.original.textContent);
      return line;
    });
    this.overlay.replaceChildren(...lines);
    this.overlay.hidden = false;
    clearTimeout(this.fade);
    this.fade = setTimeout(() => (this.overlay.hidden = true), 8000);
  }

  announce(entry, text) {
    this.live.textContent = `${entry.who.textContent}: ${text}`;
  }

  scroll() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  rename(pid, name) {
    for (const e of this.entries.values()) if (e.el.dataset.speaker === pid) e.who.textContent = name;
  }
}

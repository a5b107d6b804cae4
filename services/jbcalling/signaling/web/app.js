// The page's entry: which view shows (lobby, call, end), the interface language, the room link.
import { Call } from "./call.js";
import { applyI18n, lang, pickInitialLang, setLang, t } from "./i18n.js";
import { forgetSession, Lobby } from "./lobby.js";

const $ = (sel) => document.querySelector(sel);
const ROOM_PATH = /^\/r\/([A-Za-z0-9_-]{22})\/?$/;
let call = null;
let lastRoom = null;

function roomFromPath() {
  return (location.pathname.match(ROOM_PATH) || [])[1] || null;
}

function show(view) {
  for (const el of document.querySelectorAll("[data-view]")) el.hidden = el.dataset.view !== view;
  document.body.dataset.screen = view;
}

const lobby = new Lobby({
  onRoom(room) {
    history.pushState({}, "", `/r/${room}`);
    lobby.open(room, lang());
    $("#name").focus();
  },
  onJoined(session, stream, problems) {
    lastRoom = session.room;
    show("call");
    call = new Call(session, stream, problems, ended);
    call.start();
    $("#btn-mic").focus();
  },
});

function ended(reason) {
  call = null;
  // Removed, ended or expired: the seat is gone, a new join takes a new one. After "leave" the
  // seat is held a while: "join again" takes it back.
  // "replaced": this seat is open in another tab or window; "join again" takes it back here.
  if (!["left", "replaced"].includes(reason)) forgetSession(lastRoom);
  show("end");
  $("#end-message").textContent = t(reason);
  $("#end-message").dataset.reason = reason;
  $("#rejoin").hidden = !["left", "expired", "replaced"].includes(reason);
  $("#end-message").focus();
}

function openLobby() {
  show("lobby");
  lobby.open(roomFromPath(), lang());
}

$("#rejoin").addEventListener("click", () => {
  if (lastRoom) openLobby();
});
$("#ui-lang").addEventListener("change", (e) => {
  setLang(e.target.value);
  call?.relabel();
  const reason = $("#end-message").dataset.reason;
  if (reason) $("#end-message").textContent = t(reason);
});
window.addEventListener("popstate", () => {
  if (!call) openLobby();
});

setLang(pickInitialLang());
$("#ui-lang").value = lang();
applyI18n(document);
openLobby();
// The lobby is usable from here on (the camera preview arrives later): the browser test reads
// this mark to measure page load to interactive.
document.body.dataset.ready = "1";
performance.mark("jb-interactive");

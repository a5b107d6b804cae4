// The interface's words in English and Vietnamese. Elements carry data-i18n="key" (text),
// data-i18n-label="key" (aria-label) or data-i18n-title="key"; applyI18n() fills them.
const STRINGS = {
  en: {
    skip: "Skip to content",
    tagline: "Video calls where Vietnamese and English speakers understand each other live.",
    ui_lang: "Interface language",
    create_title: "Start a call",
    create_btn: "Create a room",
    creating: "Creating…",
    link_label: "Room link: share it with the people you call",
    copy: "Copy link",
    copied: "Link copied",
    join_title: "Join the call",
    name: "Your name",
    speak: "I speak",
    captions_in: "Captions in",
    hear: "Hear the translation spoken",
    lang_vi: "Tiếng Việt",
    lang_en: "English",
    camera: "Camera",
    microphone: "Microphone",
    no_device: "None",
    preview: "Your camera preview",
    join_btn: "Join",
    joining: "Joining…",
    cam_denied: "Camera access was refused: you can join with audio only. To be seen, allow the camera in the browser's site settings and reload.",
    mic_denied: "Microphone access was refused: the others will not hear you. Allow the microphone in the browser's site settings and reload.",
    no_media: "No camera or microphone was found: you can still join, listen and read the captions.",
    room_full: "This room is full: no one else can join it now.",
    room_not_found: "This room does not exist or has ended.",
    rate_limited: "Too many attempts: wait a minute and try again.",
    network: "The server cannot be reached: check your connection and try again.",
    bad_name: "Enter a name of 1 to 60 characters.",
    join_failed: "Joining failed",
    removed: "The host removed you from this call.",
    ended: "The host ended this call.",
    left: "You left the call.",
    expired: "Your place in the call has expired: join again.",
    reconnecting: "Connection lost: reconnecting…",
    media_reconnecting: "Reconnecting audio and video…",
    media_failed: "Audio and video could not connect:",
    captions_down: "Captions are paused: speech recognition is unavailable. The call goes on.",
    captions_down_for: "Captions of {names} are paused: speech recognition is unavailable for them. The call goes on.",
    speech_down: "The spoken translation is unavailable: captions only.",
    muted_by_host: "The host muted your microphone. Unmute it when you want to speak.",
    rejoin: "Join again",
    new_room: "Start a new call",
    mic_off: "Mute microphone",
    mic_on: "Unmute microphone",
    cam_off: "Turn camera off",
    cam_on: "Turn camera on",
    cam_unavailable: "No camera",
    share: "Share screen",
    share_stop: "Stop sharing",
    leave: "Leave",
    end_room: "End call for everyone",
    mute_person: "Mute",
    remove_person: "Remove",
    confirm_remove: "Remove {name} from the call?",
    confirm_end: "End the call for everyone?",
    confirm: "Yes",
    cancel: "Cancel",
    captions: "Captions",
    captions_settings: "Captions and translation",
    no_captions: "Captions appear here when someone speaks.",
    translation_unavailable: "translation unavailable",
    jump_latest: "Jump to the latest caption",
    download_txt: "Transcript (.txt)",
    download_vtt: "Subtitles (.vtt)",
    speech_volume: "Translation volume",
    duck: "Original voice while the translation plays",
    you: "you",
    host: "host",
    muted: "muted",
    speaking: "speaking",
    audio_only: "audio only",
    people: "{n} in the call",
    video_grid: "Participants",
    controls: "Call controls",
  },
  vi: {
    skip: "Chuyển đến nội dung",
    tagline: "Gọi video để người nói tiếng Việt và tiếng Anh hiểu nhau ngay lập tức.",
    ui_lang: "Ngôn ngữ giao diện",
    create_title: "Bắt đầu cuộc gọi",
    create_btn: "Tạo phòng",
    creating: "Đang tạo…",
    link_label: "Liên kết phòng: gửi cho những người bạn gọi",
    copy: "Sao chép liên kết",
    copied: "Đã sao chép liên kết",
    join_title: "Tham gia cuộc gọi",
    name: "Tên của bạn",
    speak: "Tôi nói",
    captions_in: "Phụ đề bằng",
    hear: "Nghe bản dịch bằng giọng nói",
    lang_vi: "Tiếng Việt",
    lang_en: "English",
    camera: "Máy ảnh",
    microphone: "Micrô",
    no_device: "Không có",
    preview: "Xem trước máy ảnh của bạn",
    join_btn: "Tham gia",
    joining: "Đang tham gia…",
    cam_denied: "Quyền dùng máy ảnh bị từ chối: bạn vẫn có thể tham gia chỉ với âm thanh. Để mọi người thấy bạn, hãy cho phép máy ảnh trong cài đặt trang của trình duyệt rồi tải lại.",
    mic_denied: "Quyền dùng micrô bị từ chối: người khác sẽ không nghe thấy bạn. Hãy cho phép micrô trong cài đặt trang của trình duyệt rồi tải lại.",
    no_media: "Không tìm thấy máy ảnh hay micrô: bạn vẫn có thể tham gia, nghe và đọc phụ đề.",
    room_full: "Phòng này đã đầy: hiện không ai có thể vào thêm.",
    room_not_found: "Phòng này không tồn tại hoặc đã kết thúc.",
    rate_limited: "Quá nhiều lần thử: hãy đợi một phút rồi thử lại.",
    network: "Không kết nối được máy chủ: hãy kiểm tra mạng rồi thử lại.",
    bad_name: "Hãy nhập tên từ 1 đến 60 ký tự.",
    join_failed: "Không tham gia được",
    removed: "Chủ phòng đã mời bạn ra khỏi cuộc gọi.",
    ended: "Chủ phòng đã kết thúc cuộc gọi.",
    left: "Bạn đã rời cuộc gọi.",
    expired: "Chỗ của bạn trong cuộc gọi đã hết hạn: hãy tham gia lại.",
    reconnecting: "Mất kết nối: đang kết nối lại…",
    media_reconnecting: "Đang kết nối lại âm thanh và hình ảnh…",
    media_failed: "Không kết nối được âm thanh và hình ảnh:",
    captions_down: "Phụ đề tạm dừng: nhận dạng giọng nói không hoạt động. Cuộc gọi vẫn tiếp tục.",
    captions_down_for: "Phụ đề của {names} tạm dừng: không nhận dạng được giọng nói của họ. Cuộc gọi vẫn tiếp tục.",
    speech_down: "Không phát được bản dịch bằng giọng nói: chỉ có phụ đề.",
    muted_by_host: "Chủ phòng đã tắt micrô của bạn. Hãy bật lại khi bạn muốn nói.",
    rejoin: "Tham gia lại",
    new_room: "Bắt đầu cuộc gọi mới",
    mic_off: "Tắt micrô",
    mic_on: "Bật micrô",
    cam_off: "Tắt máy ảnh",
    cam_on: "Bật máy ảnh",
    cam_unavailable: "Không có máy ảnh",
    share: "Chia sẻ màn hình",
    share_stop: "Dừng chia sẻ",
    leave: "Rời cuộc gọi",
    end_room: "Kết thúc cuộc gọi cho mọi người",
    mute_person: "Tắt micrô",
    remove_person: "Mời ra",
    confirm_remove: "Mời {name} ra khỏi cuộc gọi?",
    confirm_end: "Kết thúc cuộc gọi cho mọi người?",
    confirm: "Đồng ý",
    cancel: "Hủy",
    captions: "Phụ đề",
    captions_settings: "Phụ đề và bản dịch",
    no_captions: "Phụ đề sẽ hiện ở đây khi có người nói.",
    translation_unavailable: "không có bản dịch",
    jump_latest: "Đến phụ đề mới nhất",
    download_txt: "Bản ghi (.txt)",
    download_vtt: "Phụ đề (.vtt)",
    speech_volume: "Âm lượng bản dịch",
    duck: "Giọng gốc khi đang phát bản dịch",
    you: "bạn",
    host: "chủ phòng",
    muted: "đã tắt micrô",
    speaking: "đang nói",
    audio_only: "chỉ âm thanh",
    people: "{n} người trong cuộc gọi",
    video_grid: "Người tham gia",
    controls: "Điều khiển cuộc gọi",
  },
};

let current = "en";

export function pickInitialLang() {
  const saved = localStorage.getItem("jb.ui");
  if (saved === "vi" || saved === "en") return saved;
  return (navigator.language || "").toLowerCase().startsWith("vi") ? "vi" : "en";
}

export function setLang(lang) {
  current = lang === "vi" ? "vi" : "en";
  localStorage.setItem("jb.ui", current);
  document.documentElement.lang = current;
  applyI18n(document);
}

export function lang() {
  return current;
}

/** The text for ``key``, with {placeholders} filled from ``vars``. */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export function applyI18n(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

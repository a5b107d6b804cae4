// The local camera and microphone, and the peer connection to the media gateway.
//
// The gateway makes the offer (gateway/sfu.py): m-line 0 and 1 receive this page's microphone
// and camera, then pairs of (audio, video) slots carry the other participants (a media_slots
// event maps participants to mids), and the last m-line carries the translated speech.

const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };

/** The camera and microphone, falling back to what is allowed. ``problems`` lists what could
 * not be had: "camera_denied", "mic_denied", "no_media". */
export async function openLocalMedia({ cameraId = "", micId = "" } = {}) {
  const audio = micId ? { deviceId: { exact: micId } } : true;
  const video = cameraId ? { ...VIDEO, deviceId: { exact: cameraId } } : VIDEO;
  const md = navigator.mediaDevices;
  if (!md || !md.getUserMedia) return { stream: new MediaStream(), problems: ["no_media"] };
  try {
    return { stream: await md.getUserMedia({ audio, video }), problems: [] };
  } catch (both) {
    const problems = [];
    let stream = new MediaStream();
    try {
      stream = await md.getUserMedia({ audio });
      problems.push(denied(both) ? "camera_denied" : "no_camera");
    } catch (micErr) {
      try {
        stream = await md.getUserMedia({ video });
        problems.push(denied(micErr) ? "mic_denied" : "no_mic");
      } catch {
        problems.push(denied(micErr) ? "mic_denied" : "no_media");
        if (denied(both)) problems.push("camera_denied");
      }
    }
    return { stream, problems };
  }
}

function denied(err) {
  return err && (err.name === "NotAllowedError" || err.name === "SecurityError");
}

export async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], mics: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === "videoinput" && d.deviceId),
    mics: all.filter((d) => d.kind === "audioinput" && d.deviceId),
  };
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() || []) track.stop();
}

/** One peer connection to the gateway. */
export class MediaLink {
  constructor(iceServers) {
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  }

  /** Answer the gateway's offer, sending ``stream``'s tracks; returns the complete answer SDP
   * (the gateway does not trickle ICE). */
  async answer(offerSdp, stream) {
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
    const [mic, cam] = pc.getTransceivers();
    mic.direction = "sendonly";
    cam.direction = "sendonly"; // even without a camera: a screen share can fill it later
    await mic.sender.replaceTrack(stream.getAudioTracks()[0] || null);
    await cam.sender.replaceTrack(stream.getVideoTracks()[0] || null);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc, 3000);
    return pc.localDescription.sdp;
  }

  track(mid) {
    const tr = this.pc.getTransceivers().find((t) => t.mid === mid);
    return tr ? tr.receiver.track : null;
  }

  speechTrack() {
    const all = this.pc.getTransceivers();
    return all.length ? all[all.length - 1].receiver.track : null;
  }

  async sendVideo(track) {
    await this.pc.getTransceivers()[1]?.sender.replaceTrack(track);
  }

  async sendAudio(track) {
    await this.pc.getTransceivers()[0]?.sender.replaceTrack(track);
  }

  close() {
    this.pc.close();
  }
}

function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

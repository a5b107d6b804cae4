// Sound: the translated speech (volume, and ducking of the original voices while it plays),
// and detecting when this participant is speaking (to light their tile for everyone).

export class SpeechOut {
  constructor(audioEl, originals) {
    this.el = audioEl;
    this.originals = originals; // () => the media elements playing the other participants
    this.duckLevel = 0.25;
    this.until = 0;
    this.timer = null;
  }

  attach(track) {
    if (!track || this.el.srcObject?.getTracks()[0] === track) return;
    this.el.srcObject = new MediaStream([track]);
    this.el.play().catch(() => {});
  }

  setVolume(v) {
    this.el.volume = v;
  }

  setDuck(v) {
    this.duckLevel = v;
    this.apply();
  }

  /** The gateway is playing a translation to this participant for ``ms``. */
  duck(ms) {
    this.until = Date.now() + ms;
    this.apply();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.apply(), ms + 300);
  }

  apply() {
    const level = Date.now() < this.until ? this.duckLevel : 1;
    for (const el of this.originals()) el.volume = level;
    document.body.classList.toggle("ducked", level < 1);
  }
}

/** Calls ``onChange(true|false)`` when the microphone's level rises above / falls below
 * speech, with hysteresis (on after 150 ms of voice, off after 900 ms of quiet). */
export class SpeakingDetector {
  constructor(track, onChange) {
    this.onChange = onChange;
    this.on = false;
    this.loud = 0;
    this.quiet = 0;
    this.ctx = new AudioContext();
    const src = this.ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    src.connect(this.analyser);
    this.buf = new Float32Array(this.analyser.fftSize);
    this.timer = setInterval(() => this.tick(track), 50);
  }

  tick(track) {
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const x of this.buf) sum += x * x;
    const voiced = track.enabled && Math.sqrt(sum / this.buf.length) > 0.02;
    this.loud = voiced ? this.loud + 50 : 0;
    this.quiet = voiced ? 0 : this.quiet + 50;
    if (!this.on && this.loud >= 150) this.set(true);
    else if (this.on && this.quiet >= 900) this.set(false);
  }

  set(on) {
    this.on = on;
    this.onChange(on);
  }

  stop() {
    clearInterval(this.timer);
    this.ctx.close().catch(() => {});
  }
}

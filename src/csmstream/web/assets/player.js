// Streaming PCM playback for the pages: push 24 kHz Float32 chunks as they arrive, hear them at once.
//
// The AudioWorklet player (player-worklet.js) holds a jitter buffer on the audio thread. Where AudioWorklet
// is unavailable (pages served over plain http to another machine are not a secure context), a fallback
// schedules AudioBufferSourceNodes back to back on the context's clock, which is also gapless.

import { SAMPLE_RATE } from "./common.js";

/** An AudioContext at 24 kHz when the browser allows it (no resampling), else at its own rate. */
export function createAudioContext() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) throw new Error("This browser has no Web Audio support.");
  try {
    return new Context({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
  } catch {
    return new Context({ latencyHint: "interactive" });
  }
}

export class PcmPlayer {
  /**
   * @param {AudioContext} context
   * @param {{prebufferMs?: number, onStats?: Function, onDrained?: Function}} options
   *   onStats({samplesPlayed, buffered, underruns, state}) runs as audio plays; samplesPlayed counts the
   *   samples of the current stream (since the last `start()`).
   */
  static async create(context, options = {}) {
    const player = new PcmPlayer(context, options);
    await player.init();
    return player;
  }

  constructor(context, { prebufferMs = 100, onStats = () => {}, onDrained = () => {} } = {}) {
    this.context = context;
    this.prebufferMs = prebufferMs;
    this.onStats = onStats;
    this.onDrained = onDrained;
    this.samplesPushed = 0; // ever, across streams
    this.streamStart = 0; // samplesPushed when the current stream began
    this.node = null;
    this.fallback = null;
  }

  async init() {
    if (this.context.audioWorklet) {
      await this.context.audioWorklet.addModule(new URL("./player-worklet.js", import.meta.url));
      this.node = new AudioWorkletNode(this.context, "pcm-player", {
        numberOfInputs: 0,
        outputChannelCount: [1],
        processorOptions: { inputSampleRate: SAMPLE_RATE, prebufferMs: this.prebufferMs },
      });
      this.node.port.onmessage = (event) => this.onWorkletMessage(event.data);
      this.node.connect(this.context.destination);
    } else {
      this.fallback = new ScheduledPlayer(this.context, this.prebufferMs, (msg) => this.onWorkletMessage(msg));
    }
  }

  get kind() {
    return this.node ? "AudioWorklet" : "scheduled buffers";
  }

  onWorkletMessage(msg) {
    if (msg.type === "stats") {
      this.onStats({ ...msg, samplesPlayed: Math.max(0, msg.samplesPlayed - this.streamStart) });
    } else if (msg.type === "drained") {
      this.onDrained();
    }
  }

  /** A new stream begins: counting restarts and anything still buffered is dropped. */
  start() {
    this.flush();
    this.streamStart = this.samplesPushed;
    if (this.context.state === "suspended") this.context.resume();
  }

  /** @param {Float32Array} samples 24 kHz mono */
  push(samples) {
    if (!samples.length) return;
    this.samplesPushed += samples.length;
    if (this.node) this.node.port.postMessage({ type: "push", samples }, [samples.buffer]);
    else this.fallback.push(samples);
  }

  /** No more samples in this stream: play out what is buffered, then report drained. */
  end() {
    if (this.node) this.node.port.postMessage({ type: "end" });
    else this.fallback.end();
  }

  /** Stop at once and drop what is buffered (cancel, barge-in). */
  flush() {
    if (this.node) this.node.port.postMessage({ type: "flush" });
    else this.fallback.flush();
  }
}

/** The fallback: each chunk becomes an AudioBuffer scheduled to start where the previous one ends. */
class ScheduledPlayer {
  constructor(context, prebufferMs, post) {
    this.context = context;
    this.prebufferS = prebufferMs / 1000;
    this.post = post;
    this.sources = new Set();
    this.nextStartS = 0;
    this.pushed = 0; // samples ever pushed, like the worklet's write position
    this.scheduledFrom = 0; // `pushed` when the current run of back-to-back buffers began
    this.runStartS = 0;
    this.ended = false;
    this.inStream = false;
    this.underruns = 0;
    this.timer = null;
  }

  push(samples) {
    const now = this.context.currentTime;
    if (this.nextStartS < now) {
      // nothing is scheduled ahead: a new stream, or this one ran dry (an underrun); buffer a little first
      if (this.inStream) this.underruns += 1;
      this.scheduledFrom = this.pushed;
      this.runStartS = now + this.prebufferS;
      this.nextStartS = this.runStartS;
    }
    this.inStream = true;
    const buffer = this.context.createBuffer(1, samples.length, SAMPLE_RATE);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.onended = () => {
      this.sources.delete(source);
      if (this.sources.size === 0 && this.ended) this.finish();
    };
    source.start(this.nextStartS);
    this.sources.add(source);
    this.nextStartS += samples.length / SAMPLE_RATE;
    this.pushed += samples.length;
    this.timer ??= setInterval(() => this.report(), 50);
  }

  playedSamples() {
    const elapsedS = Math.max(0, this.context.currentTime - this.runStartS);
    return Math.min(this.pushed, this.scheduledFrom + Math.round(elapsedS * SAMPLE_RATE));
  }

  report(state) {
    const played = this.playedSamples();
    const playing = this.sources.size > 0 && this.context.currentTime >= this.runStartS;
    this.post({
      type: "stats",
      samplesPlayed: played,
      buffered: this.pushed - played,
      underruns: this.underruns,
      state: state ?? (playing ? "playing" : this.sources.size ? "buffering" : "idle"),
    });
  }

  end() {
    this.ended = true;
    if (this.sources.size === 0) this.finish();
  }

  finish() {
    this.ended = false;
    this.inStream = false;
    this.scheduledFrom = this.pushed;
    this.runStartS = this.context.currentTime;
    clearInterval(this.timer);
    this.timer = null;
    this.post({ type: "stats", samplesPlayed: this.pushed, buffered: 0, underruns: this.underruns, state: "idle" });
    this.post({ type: "drained" });
  }

  flush() {
    for (const source of this.sources) {
      source.onended = null;
      source.stop();
    }
    this.sources.clear();
    this.ended = false;
    this.inStream = false;
    this.nextStartS = 0;
    this.scheduledFrom = this.pushed;
    this.runStartS = this.context.currentTime;
    clearInterval(this.timer);
    this.timer = null;
    this.report("idle");
  }
}

// AudioWorklet processor "pcm-player": plays PCM pushed from the page, gaplessly, through a jitter buffer.
//
// Chunks are appended to one ring buffer, so consecutive chunks play back to back with no gap. Playback
// starts once `prebuffer` samples wait (or the stream has ended), so network jitter does not cause a
// click on every late chunk. When the buffer runs dry mid-stream (an underrun), the processor outputs
// silence, goes back to buffering, and waits for a larger prebuffer next time: the jitter buffer adapts.
// Input at another rate than the context's is resampled here by linear interpolation.
//
// Messages in:  {type: "push", samples: Float32Array} | {type: "end"} | {type: "flush"}
// Messages out: {type: "stats", samplesPlayed, buffered, underruns, state} (about every 40 ms and on
//               every state change), state one of "idle" | "buffering" | "playing".
//               {type: "drained"} once an ended stream has played out completely.

const STATS_EVERY_FRAMES = 1024; // ≈ 21 ms at 48 kHz, 43 ms at 24 kHz

class PcmPlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.inputRate = opts.inputSampleRate || sampleRate;
    this.step = this.inputRate / sampleRate; // input samples per output sample
    this.initialPrebuffer = Math.round(((opts.prebufferMs ?? 100) * this.inputRate) / 1000);
    this.prebuffer = this.initialPrebuffer;
    this.maxPrebuffer = Math.round(((opts.maxPrebufferMs ?? 1000) * this.inputRate) / 1000);
    this.ring = new Float32Array(1 << 16);
    this.readPos = 0; // absolute input-sample position (fractional when resampling)
    this.writePos = 0; // absolute: samples ever pushed
    this.ended = false;
    this.state = "idle";
    this.samplesPlayed = 0;
    this.underruns = 0;
    this.framesSinceStats = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  buffered() {
    return this.writePos - Math.floor(this.readPos);
  }

  onMessage(msg) {
    if (msg.type === "push") {
      this.append(msg.samples);
      if (this.state === "idle") this.setState("buffering");
    } else if (msg.type === "end") {
      this.ended = true;
      if (this.state === "idle") this.port.postMessage({ type: "drained" });
    } else if (msg.type === "flush") {
      this.readPos = this.writePos; // drop everything buffered, at once
      this.ended = false;
      // a new stream: keep some of what the last one taught about the network, but let it shrink back
      this.prebuffer = Math.max(this.initialPrebuffer, Math.round(this.prebuffer * 0.75));
      this.setState("idle");
    }
  }

  append(samples) {
    const needed = this.buffered() + samples.length + 2;
    if (needed > this.ring.length) this.grow(needed);
    const mask = this.ring.length - 1;
    for (let i = 0; i < samples.length; i++) this.ring[(this.writePos + i) & mask] = samples[i];
    this.writePos += samples.length;
  }

  grow(needed) {
    let size = this.ring.length;
    while (size < needed) size *= 2;
    const bigger = new Float32Array(size);
    const oldMask = this.ring.length - 1;
    const newMask = size - 1;
    for (let pos = Math.floor(this.readPos); pos < this.writePos; pos++) {
      bigger[pos & newMask] = this.ring[pos & oldMask];
    }
    this.ring = bigger;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.postStats();
  }

  postStats() {
    this.framesSinceStats = 0;
    this.port.postMessage({
      type: "stats",
      samplesPlayed: this.samplesPlayed,
      buffered: this.buffered(),
      underruns: this.underruns,
      state: this.state,
      prebuffer: this.prebuffer,
    });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const channels = outputs[0];
    if (this.state === "buffering" && (this.buffered() >= this.prebuffer || this.ended)) {
      this.setState("playing");
    }
    let written = 0;
    if (this.state === "playing") written = this.render(out);
    out.fill(0, written);
    for (let c = 1; c < channels.length; c++) channels[c].set(out);
    if (this.state === "playing" && written < out.length) this.ranDry();
    this.framesSinceStats += out.length;
    if (this.framesSinceStats >= STATS_EVERY_FRAMES && this.state !== "idle") this.postStats();
    return true; // keep the processor alive for the next stream
  }

  /** Fill `out` from the ring; returns how many output frames were written. */
  render(out) {
    const mask = this.ring.length - 1;
    const start = Math.floor(this.readPos);
    let i = 0;
    if (this.step === 1) {
      const n = Math.min(out.length, this.writePos - start);
      for (; i < n; i++) out[i] = this.ring[(start + i) & mask];
      this.readPos = start + n;
    } else {
      // linear interpolation needs the sample after the read position too
      while (i < out.length && this.readPos + 1 < this.writePos) {
        const pos = Math.floor(this.readPos);
        const frac = this.readPos - pos;
        const a = this.ring[pos & mask];
        const b = this.ring[(pos + 1) & mask];
        out[i++] = a + (b - a) * frac;
        this.readPos += this.step;
      }
      if (i < out.length && this.ended && this.readPos < this.writePos) {
        out[i++] = this.ring[Math.floor(this.readPos) & mask]; // the very last sample
        this.readPos = this.writePos;
      }
    }
    this.samplesPlayed = Math.min(Math.floor(this.readPos), this.writePos);
    return i;
  }

  ranDry() {
    if (this.ended) {
      this.ended = false;
      this.readPos = this.writePos;
      this.samplesPlayed = this.writePos;
      this.setState("idle");
      this.port.postMessage({ type: "drained" });
      return;
    }
    // mid-stream: the network or the server fell behind; wait for more before resuming, and keep a
    // deeper buffer from now on so that the next hiccup is absorbed
    this.underruns += 1;
    this.prebuffer = Math.min(this.maxPrebuffer, Math.round(this.prebuffer * 1.5) + 480);
    this.setState("buffering");
  }
}

registerProcessor("pcm-player", PcmPlayerProcessor);

// AudioWorklet processor "mic-capture": microphone audio at the context's rate → mono chunks at
// `targetSampleRate` (24 kHz for the server), posted to the page as Float32Arrays of `chunkSamples`.
//
// Downsampling averages the input over each output sample's time span (an "area" resampler). That is a
// low-pass filter as well, so 48 kHz speech does not alias into the 24 kHz band; for equal rates it is
// an exact copy.

class MicCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    const opts = options.processorOptions || {};
    super();
    this.step = sampleRate / (opts.targetSampleRate || 24000); // input samples per output sample
    this.chunk = new Float32Array(opts.chunkSamples || 960);
    this.filled = 0;
    this.acc = 0; // weighted sum of the output sample being built
    this.phase = 0; // input samples (fractional) already in `acc`
    this.port.onmessage = (event) => {
      if (event.data?.type === "flush") this.emit();
    };
  }

  push(value) {
    this.chunk[this.filled++] = value;
    if (this.filled === this.chunk.length) this.emit();
  }

  emit() {
    if (this.filled === 0) return;
    const out = this.chunk.slice(0, this.filled);
    this.filled = 0;
    this.port.postMessage(out, [out.buffer]);
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input yet (the stream is starting)
    const length = channels[0].length;
    const step = this.step;
    for (let i = 0; i < length; i++) {
      let x = 0;
      for (let c = 0; c < channels.length; c++) x += channels[c][i];
      x /= channels.length; // down-mix
      let weight = 1; // this input sample spans one unit of input time
      while (weight > 0) {
        const take = Math.min(weight, step - this.phase);
        this.acc += x * take;
        this.phase += take;
        weight -= take;
        if (this.phase >= step - 1e-9) {
          this.push(this.acc / step);
          this.acc = 0;
          this.phase = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("mic-capture", MicCaptureProcessor);

// The microphone as a stream of 24 kHz mono Float32 chunks (getUserMedia + the mic-capture worklet).

import { SAMPLE_RATE, secureContextHint } from "./common.js";

export class MicCapture {
  /**
   * Ask for the microphone and start capturing; `onChunk(Float32Array)` gets 24 kHz mono audio.
   * Throws an Error with a sentence a user can act on (permission denied, no device, insecure page).
   */
  static async start({ onChunk, chunkMs = 40, echoCancellation = true } = {}) {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error(`This browser gives this page no microphone access.${secureContextHint()}`);
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      const reason =
        err.name === "NotAllowedError"
          ? "microphone permission was denied"
          : err.name === "NotFoundError"
            ? "no microphone was found"
            : err.message;
      throw new Error(`Cannot use the microphone: ${reason}.`);
    }
    // the device's own rate: some browsers refuse a media stream into a context of another rate
    const context = new (window.AudioContext || window.webkitAudioContext)();
    try {
      if (!context.audioWorklet) throw new Error(`AudioWorklet is unavailable.${secureContextHint()}`);
      await context.audioWorklet.addModule(new URL("./mic-worklet.js", import.meta.url));
      const source = context.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(context, "mic-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: {
          targetSampleRate: SAMPLE_RATE,
          chunkSamples: Math.round((chunkMs * SAMPLE_RATE) / 1000),
        },
      });
      node.port.onmessage = (event) => onChunk(event.data);
      source.connect(node);
      node.connect(context.destination); // its output is silence; the connection keeps it processing
      if (context.state !== "running") await context.resume();
      return new MicCapture(stream, context, node);
    } catch (err) {
      stream.getTracks().forEach((track) => track.stop());
      context.close();
      throw err;
    }
  }

  constructor(stream, context, node) {
    this.stream = stream;
    this.context = context;
    this.node = node;
  }

  get inputSampleRate() {
    return this.context.sampleRate;
  }

  /** Stop capturing and release the microphone (the browser's recording indicator goes off). */
  async stop() {
    this.node.port.postMessage({ type: "flush" }); // the last partial chunk
    await new Promise((resolve) => setTimeout(resolve, 30));
    this.node.port.onmessage = null;
    this.stream.getTracks().forEach((track) => track.stop());
    await this.context.close();
  }
}

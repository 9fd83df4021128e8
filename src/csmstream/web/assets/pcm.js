// PCM conversions and a WAV writer, all in the page (no server round trip to save what was heard).

/** Little-endian PCM16 bytes → Float32 samples in [-1, 1). */
export function pcm16ToFloat32(buffer) {
  const view = new DataView(buffer);
  const samples = new Float32Array(buffer.byteLength >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
  return samples;
}

/** Little-endian float32 bytes → Float32 samples (copied: the source buffer may not be 4-byte aligned). */
export function f32leToFloat32(buffer) {
  const view = new DataView(buffer);
  const samples = new Float32Array(buffer.byteLength >> 2);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getFloat32(4 * i, true);
  return samples;
}

/** Float32 samples → little-endian PCM16 bytes (clipped). */
export function float32ToPcm16Bytes(samples) {
  const bytes = new ArrayBuffer(samples.length * 2);
  const view = new DataView(bytes);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(2 * i, Math.round(s < 0 ? s * 32768 : s * 32767), true);
  }
  return bytes;
}

export function base64FromBytes(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  const step = 0x8000; // String.fromCharCode takes a bounded number of arguments
  for (let i = 0; i < bytes.length; i += step) binary += String.fromCharCode(...bytes.subarray(i, i + step));
  return btoa(binary);
}

export function bytesFromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** Mono 16-bit WAV from Float32 chunks. */
export function encodeWav(chunks, sampleRate) {
  const numSamples = chunks.reduce((n, chunk) => n + chunk.length, 0);
  const header = new ArrayBuffer(44);
  const view = new DataView(header);
  const text = (offset, value) => [...value].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + numSamples * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, numSamples * 2, true);
  return new Blob([header, ...chunks.map(float32ToPcm16Bytes)], { type: "audio/wav" });
}

// The Speak page: text → `/v1/tts/stream` (docs/ARCHITECTURE.md §7) → audio played while it streams.
//
// One WebSocket, opened on the first Speak and kept for the next ones. Each Speak is one `synthesize`
// request with its own request_id; messages of any older request (cancelled, replaced) are ignored.
// With `audio_encoding: "binary"` each `audio_chunk` message is followed by one binary frame holding
// exactly that chunk's bytes.

import {
  SAMPLE_RATE,
  announce,
  closeMessage,
  fetchVoices,
  fillVoiceSelect,
  initPage,
  openWebSocket,
  refreshEngine,
  secureContextHint,
  showError,
} from "./common.js";
import { bytesFromBase64, encodeWav, f32leToFloat32, pcm16ToFloat32 } from "./pcm.js";
import { PcmPlayer, createAudioContext } from "./player.js";

const $ = (id) => document.getElementById(id);
const els = {
  form: $("speak-form"),
  text: $("text"),
  voice: $("voice"),
  temperature: $("temperature"),
  topk: $("topk"),
  seed: $("seed"),
  maxSeconds: $("max-seconds"),
  format: $("format"),
  speak: $("speak"),
  cancel: $("cancel"),
  download: $("download"),
  replay: $("replay"),
  progress: $("progress"),
  status: $("status"),
  error: $("error"),
  meter: $("played-meter"),
  playerKind: $("player-kind"),
};

// What tests and curious users can read: updated as audio actually plays, not as it arrives.
const stats = {
  state: "idle", // idle | connecting | queued | generating | playing | done | cancelled | error
  requestId: null,
  samplesPlayed: 0,
  samplesReceived: 0,
  chunks: 0,
  ttfaMs: null, // page-measured: Speak → first audio bytes in the page
  serverTtfaMs: null,
  rtf: null,
  audioSeconds: null,
  finishReason: null,
  underruns: 0,
  bufferedSamples: 0,
  error: null,
};
window.csmstreamStats = stats;

let socket = null; // the open (or opening) WebSocket
let socketReady = null; // Promise<WebSocket>
let audioContext = null;
let player = null;
let current = null; // the request being shown: {id, format, sentAt, chunks, pendingHeader, completed, lastChunkAt}
let requestCounter = 0;
let downloadUrl = null;
let lastAudio = null; // the chunks of the last request that produced audio, for Replay

// ---- audio

async function ensurePlayer() {
  if (!audioContext) {
    // created inside the click handler: browsers only let a user gesture start audio
    audioContext = createAudioContext();
    player = await PcmPlayer.create(audioContext, { prebufferMs: 120, onStats, onDrained });
    els.playerKind.textContent = `Playback: ${player.kind}, ${audioContext.sampleRate} Hz output.`;
  }
  if (audioContext.state !== "running") await audioContext.resume();
}

function onStats(s) {
  stats.samplesPlayed = s.samplesPlayed;
  stats.bufferedSamples = s.buffered;
  stats.underruns = s.underruns;
  if (current && !current.completed && s.state === "playing" && stats.state === "generating") {
    setState("playing");
  }
  renderFigures();
}

function onDrained() {
  if (!current?.completed) return; // a stream that ran dry mid-way is an underrun, not the end
  if (current.finishReason === "cancelled") setState("cancelled");
  else if (stats.state !== "error") setState("done");
  finishUi();
}

// ---- the socket

function connect() {
  if (socketReady) return socketReady;
  socketReady = new Promise((resolve, reject) => {
    const ws = openWebSocket("/v1/tts/stream");
    ws.binaryType = "arraybuffer";
    let opened = false;
    ws.onopen = () => {
      opened = true;
      resolve(ws);
    };
    ws.onmessage = (event) => {
      if (typeof event.data === "string") onServerMessage(event.data);
      else onBinary(event.data);
    };
    ws.onclose = (event) => {
      socket = null;
      socketReady = null;
      const message = closeMessage(event) ?? (opened ? null : "Could not connect to the server.");
      if (!opened) reject(new Error(message ?? "Could not connect to the server."));
      else if (current && !current.completed) fail(message ?? "The connection closed during the request.");
    };
    socket = ws;
  });
  return socketReady;
}

function onServerMessage(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    console.warn("csmstream: a message that is not JSON", text);
    return;
  }
  if (msg.type === "error" && (msg.request_id == null || msg.request_id === current?.id)) {
    const text = `${msg.message || "error"}${msg.code ? ` (${msg.code})` : ""}`;
    if (current?.completed) console.warn("csmstream: after the request ended:", text); // e.g. a late cancel
    else fail(text);
    return;
  }
  if (!current || msg.request_id !== current.id) {
    // an older request's tail; its binary frame (if any) must not be taken for ours
    if (current && msg.type === "audio_chunk" && !msg.audio) current.skipNextBinary = true;
    return;
  }
  switch (msg.type) {
    case "audio_status":
      if (msg.status === "queued") {
        setState("queued", `Queued: position ${msg.queue_position ?? "?"} in line…`);
      } else if (msg.status === "started") {
        setState("generating");
      }
      break;
    case "audio_chunk":
      if (msg.audio) onAudio(msg, bytesFromBase64(msg.audio));
      else current.pendingHeader = msg;
      break;
    case "completion":
      onCompletion(msg);
      break;
    default:
      break; // newer servers may send more; ignore what this page does not know
  }
}

function onBinary(buffer) {
  if (!current) return;
  if (current.skipNextBinary) {
    current.skipNextBinary = false;
    return;
  }
  const header = current.pendingHeader;
  current.pendingHeader = null;
  if (!header) return; // a frame of a request we no longer show
  onAudio(header, buffer);
}

function onAudio(header, buffer) {
  const samples = header.format === "pcm_f32le" ? f32leToFloat32(buffer) : pcm16ToFloat32(buffer);
  if (header.samples != null && header.samples !== samples.length) {
    console.warn(`csmstream: chunk ${header.seq} announced ${header.samples} samples, got ${samples.length}`);
  }
  if (header.sample_rate && header.sample_rate !== SAMPLE_RATE) {
    fail(`unexpected sample rate ${header.sample_rate} Hz (this page plays ${SAMPLE_RATE} Hz)`);
    return;
  }
  const now = performance.now();
  if (stats.ttfaMs === null) stats.ttfaMs = now - current.sentAt;
  current.lastChunkAt = now;
  current.chunks.push(samples);
  stats.chunks += 1;
  stats.samplesReceived += samples.length;
  player.push(samples.slice()); // the copy's buffer moves to the audio thread; ours stays for the WAV
  renderFigures();
}

function onCompletion(msg) {
  current.completed = true;
  // a cancel that crossed a natural end on the wire still means the user wanted silence
  current.finishReason = current.cancelRequested ? "cancelled" : msg.finish_reason;
  stats.finishReason = msg.finish_reason ?? null;
  stats.serverTtfaMs = msg.ttfa_ms ?? null;
  stats.audioSeconds = msg.audio_seconds ?? stats.samplesReceived / SAMPLE_RATE;
  stats.rtf = msg.rtf ?? null;
  if (stats.rtf === null && current.lastChunkAt && stats.audioSeconds > 0) {
    stats.rtf = (current.lastChunkAt - current.sentAt) / 1000 / stats.audioSeconds; // page-measured
  }
  offerDownload();
  setBusy(false); // generation is over; what arrived may still be playing
  renderFigures();
  if (current.finishReason === "cancelled") {
    player.flush();
    setState("cancelled");
    finishUi();
    return;
  }
  const limit = msg.finish_reason === "length" ? " (stopped at the length limit)" : "";
  announce(els.status, `Generated ${stats.audioSeconds.toFixed(2)} s of audio${limit}; playing…`);
  player.end(); // play out the buffer; onDrained marks the request done
}

/** Show an error where it is seen: scrolled into view and focused (a screen reader reads it too). */
function showPageError(error) {
  showError(els.error, error);
  if (!error) return;
  els.error.scrollIntoView({ block: "nearest" });
  els.error.focus({ preventScroll: true });
}

function fail(message) {
  stats.error = message;
  showPageError(new Error(message));
  if (/connect|connection|reach/i.test(message)) refreshEngine(); // the server may be gone: the badge says so
  if (current) {
    current.completed = true;
    player?.end(); // keep playing what did arrive
  }
  setState("error", `Error: ${message}`);
  finishUi();
}

// ---- actions

function numberField(input, integer = false) {
  const value = input.valueAsNumber;
  if (input.value.trim() === "" || Number.isNaN(value)) return undefined;
  return integer ? Math.round(value) : value;
}

async function speak() {
  const text = els.text.value.trim();
  if (!text) {
    showPageError(new Error("Type some text to speak first."));
    els.text.focus();
    return;
  }
  showError(els.error, null);
  if (current && !current.completed) sendCancel(current.id);
  try {
    await ensurePlayer();
  } catch (err) {
    showPageError(new Error(`Audio playback is unavailable: ${err.message}.${secureContextHint()}`));
    return;
  }
  resetStats();
  player.start();
  const id = `web-${Date.now().toString(36)}-${++requestCounter}`;
  const format = els.format.value;
  current = { id, format, sentAt: performance.now(), chunks: [], pendingHeader: null, completed: false };
  stats.requestId = id;
  els.cancel.disabled = false;
  setBusy(true);
  setState("connecting", "Connecting…");
  let ws;
  try {
    ws = await connect();
  } catch (err) {
    fail(err.message);
    return;
  }
  if (current?.id !== id) return; // another Speak took over while connecting
  const message = {
    type: "synthesize",
    request_id: id,
    text,
    format,
    audio_encoding: "binary",
    voice_id: els.voice.value || undefined,
    temperature: numberField(els.temperature),
    topk: numberField(els.topk, true),
    seed: numberField(els.seed, true),
    max_seconds: numberField(els.maxSeconds),
  };
  current.sentAt = performance.now();
  ws.send(JSON.stringify(message)); // undefined fields vanish: the server uses its defaults
  setState("generating", "Generating…");
}

function sendCancel(id) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "cancel", request_id: id }));
}

function cancel() {
  if (!current) return;
  player?.flush(); // silence now; the server's `completion` (cancelled) follows
  current.cancelRequested = true;
  if (!current.completed) {
    sendCancel(current.id);
    setState("cancelled", "Cancelling…");
  } else {
    setState("cancelled");
    finishUi();
  }
}

// ---- display

const STATUS_TEXT = {
  idle: "Ready.",
  generating: "Generating…",
  playing: "Playing while generating…",
  done: "Done.",
  cancelled: "Cancelled.",
};

function setState(state, text) {
  stats.state = state;
  els.form.dataset.state = state;
  let line = text ?? STATUS_TEXT[state] ?? state;
  if (state === "done" && stats.audioSeconds !== null) {
    const rtf = stats.rtf === null ? "" : `, real-time factor ${stats.rtf.toFixed(2)}`;
    line = `Done: ${stats.audioSeconds.toFixed(2)} s of audio, first audio after ${formatMs(stats.ttfaMs)}${rtf}.`;
  }
  announce(els.status, line, state === "done" ? "ok" : "");
}

function finishUi() {
  els.cancel.disabled = true;
  setBusy(false);
}

/** The Speak button says that it is working while a request is generated (and cannot be sent twice). */
function setBusy(busy) {
  els.speak.disabled = busy;
  els.speak.setAttribute("aria-busy", String(busy));
  els.speak.textContent = busy ? "Generating…" : "Speak";
}

function resetStats() {
  Object.assign(stats, {
    samplesPlayed: 0,
    samplesReceived: 0,
    chunks: 0,
    ttfaMs: null,
    serverTtfaMs: null,
    rtf: null,
    audioSeconds: null,
    finishReason: null,
    underruns: 0,
    bufferedSamples: 0,
    error: null,
  });
  els.download.hidden = true;
  els.replay.hidden = true;
  renderFigures();
}

function formatMs(ms) {
  return ms === null || ms === undefined ? "–" : `${Math.round(ms)} ms`;
}

function seconds(samples) {
  return `${(samples / SAMPLE_RATE).toFixed(2)} s`;
}

let renderQueued = false;
function renderFigures() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    $("fig-ttfa").textContent = formatMs(stats.ttfaMs);
    $("fig-server-ttfa").textContent = formatMs(stats.serverTtfaMs);
    $("fig-rtf").textContent = stats.rtf === null ? "–" : stats.rtf.toFixed(2);
    $("fig-received").textContent = stats.chunks ? seconds(stats.samplesReceived) : "–";
    $("fig-played").textContent = stats.chunks ? seconds(stats.samplesPlayed) : "–";
    $("fig-chunks").textContent = stats.chunks || "–";
    $("fig-buffered").textContent = stats.chunks ? `${Math.round((stats.bufferedSamples / SAMPLE_RATE) * 1000)} ms` : "–";
    $("fig-underruns").textContent = stats.chunks ? stats.underruns : "–";
    // played ÷ received: how far playback has got into the audio that has arrived
    const fraction = stats.samplesReceived ? Math.min(1, stats.samplesPlayed / stats.samplesReceived) : 0;
    const percent = (fraction * 100).toFixed(1);
    els.meter.style.width = `${percent}%`;
    els.progress.setAttribute("aria-valuenow", percent);
    els.progress.title = stats.chunks
      ? `played ${seconds(stats.samplesPlayed)} of ${seconds(stats.samplesReceived)} received`
      : "";
  });
}

function offerDownload() {
  if (!current?.chunks.length) return;
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(encodeWav(current.chunks, SAMPLE_RATE));
  els.download.href = downloadUrl;
  els.download.download = `csmstream-${current.id}.wav`;
  els.download.hidden = false;
  lastAudio = current.chunks;
  els.replay.hidden = false;
}

/** Play the last audio again, from the page's copy (nothing is sent to the server). */
async function replay() {
  if (!lastAudio?.length || (current && !current.completed)) return;
  try {
    await ensurePlayer();
  } catch (err) {
    showPageError(new Error(`Audio playback is unavailable: ${err.message}.${secureContextHint()}`));
    return;
  }
  showPageError(null);
  player.flush();
  player.start();
  stats.samplesPlayed = 0;
  stats.underruns = 0;
  stats.replays = (stats.replays ?? 0) + 1;
  current.finishReason = "eos"; // a finished request being played again ends as done
  current.cancelRequested = false;
  els.cancel.disabled = false;
  setState("playing", "Replaying…");
  for (const chunk of lastAudio) player.push(chunk.slice());
  player.end(); // onDrained marks it done
}

async function loadVoices() {
  try {
    fillVoiceSelect(els.voice, await fetchVoices());
    const wanted = new URLSearchParams(window.location.search).get("voice"); // from the Voices page
    if (wanted && [...els.voice.options].some((o) => o.value === wanted)) els.voice.value = wanted;
  } catch (err) {
    showError(els.error, new Error(`Could not load the voices: ${err.message}`));
  }
}

// ---- wiring

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  speak();
});
els.cancel.addEventListener("click", cancel);
els.replay.addEventListener("click", replay);
els.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    speak();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !els.cancel.disabled) cancel();
});

// The CPU voice (piper) has one voice and no sampling: say so where those are chosen.
function showEngineNotes(health) {
  const cpu = health?.engine === "piper";
  const voiceNote = $("voice-note");
  const samplingNote = $("sampling-note");
  voiceNote.textContent = cpu
    ? "The CPU voice (piper) speaks every voice in its own voice; cloned voices need the CSM engine."
    : "";
  samplingNote.textContent = cpu
    ? "The CPU voice (piper) ignores temperature, top-k and seed; max seconds and the sample format apply."
    : "";
  voiceNote.hidden = samplingNote.hidden = !cpu;
}

initPage({
  onKeyChange: () => {
    socket?.close(1000); // the next Speak reconnects with the new key
    loadVoices();
  },
}).then(showEngineNotes);
loadVoices();

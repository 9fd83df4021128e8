// The Voices page: list, create (upload or record a reference clip, with or without its transcript) and
// delete voices. Without a transcript the server finds the speech and transcribes it.

import { SAMPLE_RATE, announce, api, fetchVoices, initPage, showError } from "./common.js";
import { MicCapture } from "./mic.js";
import { encodeWav } from "./pcm.js";

const MAX_RECORDING_S = 30;

const $ = (id) => document.getElementById(id);
const els = {
  list: $("voice-list"),
  empty: $("no-voices"),
  status: $("status"),
  error: $("error"),
  form: $("create-form"),
  file: $("audio-file"),
  record: $("record"),
  recordTime: $("record-time"),
  preview: $("preview"),
  transcript: $("transcript"),
  name: $("voice-name"),
  voiceId: $("voice-id"),
  speaker: $("speaker"),
  create: $("create"),
};

// for tests and the console: the ids listed now
const state = { ids: [], lastCreated: null, lastDeleted: null };
window.csmstreamVoices = state;

let recording = null; // {mic, chunks, startedAt, timer} while recording
let recorded = null; // the last recording as a WAV Blob
let previewUrl = null;

// ---- the list

async function loadList() {
  els.list.setAttribute("aria-busy", "true");
  try {
    const voices = await fetchVoices();
    renderList(voices);
  } catch (err) {
    showError(els.error, new Error(`Could not load the voices: ${err.message}`));
  } finally {
    els.list.setAttribute("aria-busy", "false");
  }
}

function renderList(voices) {
  state.ids = voices.map((v) => v.id);
  els.empty.hidden = voices.length > 0;
  els.list.replaceChildren(
    ...voices.map((voice) => {
      const item = document.createElement("li");
      item.dataset.voiceId = voice.id;
      const about = document.createElement("div");
      const title = document.createElement("strong");
      title.textContent = voice.name;
      const meta = document.createElement("div");
      meta.className = "meta";
      const parts = [`id ${voice.id}`];
      if (voice.speaker != null) parts.push(`speaker ${voice.speaker}`);
      if (voice.reference_seconds) parts.push(`${Number(voice.reference_seconds).toFixed(1)} s reference`);
      meta.textContent = parts.join(" · ");
      about.append(title, " ");
      for (const [shown, label] of [[voice.builtin, "built in"], [voice.adapter, "fine-tuned"]]) {
        if (!shown) continue;
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = label;
        about.append(badge, " ");
      }
      about.append(meta);

      const actions = document.createElement("div");
      actions.className = "actions";
      const use = document.createElement("a");
      use.className = "button";
      use.href = `speak.html?voice=${encodeURIComponent(voice.id)}`;
      use.textContent = "Speak";
      use.setAttribute("aria-label", `Speak with ${voice.name}`);
      actions.append(use);
      if (!voice.builtin) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "danger";
        remove.textContent = "Delete";
        remove.setAttribute("aria-label", `Delete voice ${voice.name}`);
        remove.addEventListener("click", () => deleteVoice(voice));
        actions.append(remove);
      }
      item.append(about, actions);
      return item;
    }),
  );
}

async function deleteVoice(voice) {
  if (!window.confirm(`Delete the voice “${voice.name}” (${voice.id})? This cannot be undone.`)) return;
  showError(els.error, null);
  try {
    await api(`/v1/voices/${encodeURIComponent(voice.id)}`, { method: "DELETE" });
    state.lastDeleted = voice.id;
    announce(els.status, `Deleted the voice ${voice.name}.`, "ok");
  } catch (err) {
    showError(els.error, new Error(`Could not delete ${voice.id}: ${err.message}`));
  }
  await loadList();
}

// ---- the reference clip: a file, or a recording made here

function showPreview(blob) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = blob ? URL.createObjectURL(blob) : null;
  els.preview.hidden = !blob;
  if (blob) els.preview.src = previewUrl;
  else els.preview.removeAttribute("src");
}

async function toggleRecording() {
  if (recording) {
    await stopRecording();
    return;
  }
  showError(els.error, null);
  const chunks = [];
  try {
    // no echo cancellation: a voice reference should be the plain sound of the voice
    const mic = await MicCapture.start({ onChunk: (chunk) => chunks.push(chunk), echoCancellation: false });
    recording = { mic, chunks, startedAt: performance.now() };
  } catch (err) {
    showError(els.error, err);
    return;
  }
  els.record.setAttribute("aria-pressed", "true");
  els.record.textContent = "Stop recording";
  announce(els.status, "Recording… speak now.");
  recording.timer = setInterval(() => {
    const seconds = (performance.now() - recording.startedAt) / 1000;
    els.recordTime.textContent = `${seconds.toFixed(1)} s`;
    if (seconds >= MAX_RECORDING_S) stopRecording();
  }, 200);
}

async function stopRecording() {
  const { mic, chunks, timer } = recording;
  recording = null;
  clearInterval(timer);
  await mic.stop();
  els.record.setAttribute("aria-pressed", "false");
  els.record.textContent = "Record again";
  const numSamples = chunks.reduce((n, c) => n + c.length, 0);
  els.recordTime.textContent = `${(numSamples / SAMPLE_RATE).toFixed(1)} s recorded`;
  recorded = encodeWav(chunks, SAMPLE_RATE);
  els.file.value = ""; // the recording replaces any chosen file
  showPreview(recorded);
  announce(els.status, "Recording ready. Type its transcript (or leave it empty), then create the voice.");
}

// ---- create

async function createVoice() {
  showError(els.error, null);
  const file = els.file.files?.[0];
  const audio = file ?? recorded;
  const transcript = els.transcript.value.trim();
  if (!audio) {
    showError(els.error, new Error("Choose an audio file or record one first."));
    els.file.focus();
    return;
  }
  if (!els.name.value.trim() && !els.voiceId.value.trim()) {
    showError(els.error, new Error("Give the voice a name (its id is made from it), or a voice id."));
    els.name.focus();
    return;
  }
  const form = new FormData();
  form.append("audio", audio, file ? file.name : "recording.wav");
  if (transcript) form.append("transcript", transcript); // empty: the server transcribes the speech
  if (els.name.value.trim()) form.append("name", els.name.value.trim());
  if (els.voiceId.value.trim()) form.append("voice_id", els.voiceId.value.trim());
  if (els.speaker.value.trim()) form.append("speaker", els.speaker.value.trim());
  els.create.disabled = true;
  announce(els.status, transcript ? "Uploading…" : "Uploading… then finding and transcribing the speech.");
  try {
    const voice = await api("/v1/voices", { method: "POST", body: form });
    const id = voice.voice_id ?? voice.id;
    state.lastCreated = id;
    announce(els.status, `Created the voice ${voice.name || id} (id ${id}).`, "ok");
    els.form.reset();
    recorded = null;
    showPreview(null);
    els.recordTime.textContent = "";
    await loadList();
  } catch (err) {
    announce(els.status, "");
    showError(els.error, new Error(`Could not create the voice: ${err.message}`));
  } finally {
    els.create.disabled = false;
  }
}

// ---- wiring

els.record.addEventListener("click", toggleRecording);
els.file.addEventListener("change", () => {
  recorded = null;
  const file = els.file.files?.[0] ?? null;
  showPreview(file);
  // a name is needed (or an id): the file's own name is a fair first guess, which the user can change
  if (file && !els.name.value.trim() && !els.voiceId.value.trim()) {
    els.name.value = file.name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").trim();
  }
});
els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  createVoice();
});

// The CPU voice (piper) speaks in its own voice: a cloned voice changes nothing there. Say so here, where
// voices are made, not after the user has recorded one and wondered why it sounds the same.
function showEngineNote(health) {
  const note = $("engine-note");
  if (health?.engine === "piper") {
    note.textContent =
      "This server speaks with the CPU voice (piper), which always uses its own voice: voices made here are " +
      "kept, but they only change the sound on a server running CSM (with a GPU and the CSM weights).";
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

initPage({ onKeyChange: loadList }).then(showEngineNote);
loadList();

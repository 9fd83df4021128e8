// What every page shares: the API key, calls to the server, its error messages, the header.

export const SAMPLE_RATE = 24000; // the server's audio: 24 kHz mono
const KEY_STORAGE = "csmstream.apiKey";

// ---- the API key (kept in this browser only)

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage disabled (private mode): the key lives only as long as the page
  }
}

function saveApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* nothing to do: see apiKey() */
  }
}

// ---- HTTP

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The server's message from an error body: `{error: {code, message}}`, FastAPI's `{detail}`, or text. */
async function errorFromResponse(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body?.error?.message) {
      message = body.error.message;
      code = body.error.code || code;
    } else if (typeof body?.detail === "string") {
      message = body.detail;
    } else if (Array.isArray(body?.detail)) {
      message = body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    }
  } catch {
    if (text && text.length < 300) message = text;
  }
  if (response.status === 401) message = `${message}. Enter a valid API key (top of the page).`;
  return new ApiError(message, response.status, code);
}

/** fetch() with the API key; the parsed JSON body, or ApiError carrying the server's own message. */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, headers: { ...authHeaders(), ...headers } });
  } catch (err) {
    throw new ApiError(`cannot reach the server (${err.message})`, 0, "network");
  }
  if (!response.ok) throw await errorFromResponse(response);
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

// ---- WebSockets

// A key that is a valid subprotocol token (RFC 6455 §4.1) travels in the handshake's Sec-WebSocket-Protocol,
// which stays out of URLs and so out of access logs; any other key falls back to ?api_key=.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function keyFitsSubprotocol(key) {
  return TOKEN.test(key);
}

/** ws(s)://this-host/path (browsers cannot put headers on a WebSocket: the key goes in wsProtocols()). */
export function wsUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  if (key && !keyFitsSubprotocol(key)) url.searchParams.set("api_key", key);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

/** The subprotocols to offer: "csmstream" (the one the server selects) and "csmstream.bearer.KEY". */
export function wsProtocols() {
  const key = apiKey();
  return key && keyFitsSubprotocol(key) ? ["csmstream", `csmstream.bearer.${key}`] : [];
}

/** new WebSocket to this server's `path`, carrying the API key. */
export function openWebSocket(path, params = {}) {
  return new WebSocket(wsUrl(path, params), wsProtocols());
}

/** A sentence for a WebSocket that closed, or null when it closed normally. */
export function closeMessage(event) {
  switch (event.code) {
    case 1000:
    case 1001:
      return null;
    case 4401:
      return "The server refused the API key. Enter a valid one (top of the page).";
    case 4403:
      return "The server does not accept connections from this page's origin.";
    case 1006:
      return "The connection to the server was lost.";
    default:
      return `The server closed the connection (code ${event.code}${event.reason ? `: ${event.reason}` : ""}).`;
  }
}

// ---- voices

/** The voice list, whichever shape the server uses: `{voices: [...]}` or `[...]`; ids from `voice_id` or `id`. */
export async function fetchVoices() {
  const body = await api("/v1/voices");
  const list = Array.isArray(body) ? body : Array.isArray(body?.voices) ? body.voices : [];
  return list
    .map((v) => ({ ...v, id: v.voice_id ?? v.id, name: v.name || v.voice_id || v.id }))
    .filter((v) => typeof v.id === "string" && v.id);
}

/** Fill a <select> with voices, keeping the current choice when it still exists. */
export function fillVoiceSelect(select, voices) {
  const previous = select.value;
  select.replaceChildren(new Option("Server default", ""));
  for (const voice of voices) {
    const label = voice.name && voice.name !== voice.id ? `${voice.name} (${voice.id})` : voice.id;
    select.add(new Option(label, voice.id));
  }
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

// ---- status lines

/** Write to an aria-live region; kind: "" | "ok" | "busy". */
export function announce(element, text, kind = "") {
  element.textContent = text;
  element.dataset.kind = kind;
}

/** Show an error (an element with role="alert"); empty text hides it. */
export function showError(element, error) {
  element.textContent = error ? (error.message ?? String(error)) : "";
}

// ---- the header: API key form and the engine badge

async function showEngine(badge) {
  try {
    // 503 still carries the body (starting, draining, unhealthy): only no answer at all means unreachable
    const response = await fetch("/health", { headers: authHeaders(), cache: "no-store" }).catch((err) => {
      throw new ApiError(`cannot reach the server (${err.message})`, 0, "network");
    });
    const health = await response.json().catch(() => {
      throw new ApiError(`${response.status} ${response.statusText}`, response.status, "bad_health");
    });
    // a local checkpoint is a long path: its last folder names it well enough (the title has it all)
    const model = String(health.model ?? "?");
    const shortModel = model.startsWith("/") ? model.split("/").filter(Boolean).pop() : model;
    const status = health.status && health.status !== "ok" ? ` (${health.status})` : "";
    badge.textContent = `${health.engine ?? "?"} · ${shortModel}${status}`;
    badge.classList.toggle("down", health.status === "unhealthy");
    badge.title = `engine ${health.engine}, model ${health.model}, ${health.active_sessions ?? 0} active`;
    return health;
  } catch (err) {
    badge.textContent = "server unreachable";
    badge.classList.add("down");
    badge.title = err.message;
    return null;
  }
}

/** Wire the shared header; `onKeyChange` runs after the key is saved (pages reload what needs it). */
export function initPage({ onKeyChange } = {}) {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const saved = document.getElementById("key-status");
  if (form && input) {
    input.value = apiKey();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveApiKey(input.value.trim());
      if (saved) saved.textContent = input.value.trim() ? "Key saved in this browser." : "Key cleared.";
      const error = document.getElementById("error");
      if (error) showError(error, null); // errors about the old key no longer apply
      onKeyChange?.();
    });
  }
  const badge = document.getElementById("engine");
  if (!badge) return Promise.resolve(null);
  // keep the badge true: a server that died (or came back) shows within ENGINE_POLL_MS
  setInterval(() => showEngine(badge), ENGINE_POLL_MS);
  return showEngine(badge);
}

const ENGINE_POLL_MS = 5000;

/** Read /health again now (after a failed connection): the badge says "server unreachable" if it is gone. */
export function refreshEngine() {
  const badge = document.getElementById("engine");
  return badge ? showEngine(badge) : Promise.resolve(null);
}

/** Secure contexts (https, localhost) are where browsers allow microphones and AudioWorklets. */
export function secureContextHint() {
  return window.isSecureContext
    ? ""
    : " This page is not in a secure context: open it over https or on localhost to use audio features.";
}

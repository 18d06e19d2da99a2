// The room page: join a channel with the official browser SDK, send the
// microphone, play every remote audio stream labelled from its metadata, and
// show a level meter and the dominant frequency of each (window.__room exposes
// the same figures to automated tests).
import { MeteredPeer } from "/sdk/realtime.mjs";

const $ = (id) => document.getElementById(id);
const state = { peer: null, mic: null, micStream: null, remotes: new Map(), audioCtx: null };
window.__room = { state: "idle", peerId: null, peers: {}, tracks: {}, errors: [] };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  if (isError) { $("status").dataset.error = ""; window.__room.errors.push(text); }
  else delete $("status").dataset.error;
}

function label(metadata, fallback) {
  if (metadata && typeof metadata === "object") {
    const l = typeof metadata.label === "string" ? metadata.label : null;
    const r = typeof metadata.role === "string" ? metadata.role : null;
    if (l || r) return [l, r && `(${r})`].filter(Boolean).join(" ").slice(0, 80);
  }
  return fallback;
}

function peerItem(remote) {
  let li = document.getElementById(`peer-${remote.id}`);
  if (!li) {
    li = document.createElement("li");
    li.className = "peer";
    li.id = `peer-${remote.id}`;
    const title = document.createElement("strong");
    title.textContent = label(remote.metadata, remote.id);
    li.append(title);
    $("peers").append(li);
  }
  $("no-peers").hidden = true;
  return li;
}

// A WebAudio analyser per remote track: RMS level and dominant frequency.
function analyse(trackKey, stream, meter, readout) {
  state.audioCtx ??= new AudioContext();
  const ctx = state.audioCtx;
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  source.connect(analyser);
  const time = new Float32Array(analyser.fftSize);
  const freq = new Float32Array(analyser.frequencyBinCount);
  const tick = () => {
    if (!window.__room.tracks[trackKey]) return;
    analyser.getFloatTimeDomainData(time);
    analyser.getFloatFrequencyData(freq);
    let sum = 0;
    for (const s of time) sum += s * s;
    const rms = Math.sqrt(sum / time.length);
    let best = 0;
    for (let i = 1; i < freq.length; i++) if (freq[i] > freq[best]) best = i;
    const hz = (best * ctx.sampleRate) / analyser.fftSize;
    Object.assign(window.__room.tracks[trackKey], { rms, dominantHz: hz });
    meter.value = Math.min(1, rms * 4);
    readout.textContent = rms > 0.001 ? `${Math.round(hz)} Hz` : "silent";
    setTimeout(tick, 100);
  };
  tick();
}

function onTrack(remote, { track, streams, metadata }) {
  if (track.kind !== "audio") return;
  const stream = streams[0] ?? new MediaStream([track]);
  const key = `${remote.id}/${stream.id}/${track.id}`;
  const row = document.createElement("div");
  row.className = "stream";
  const name = document.createElement("span");
  name.textContent = label(metadata, `stream ${stream.id}`);
  const meter = document.createElement("meter");
  const readout = document.createElement("span");
  const audio = document.createElement("audio");
  audio.autoplay = true;
  audio.srcObject = stream;
  row.append(name, meter, readout, audio);
  peerItem(remote).append(row);
  window.__room.tracks[key] = { peerId: remote.id, streamId: stream.id, trackId: track.id, metadata: metadata ?? null, rms: 0, dominantHz: 0 };
  analyse(key, stream, meter, readout);
  track.addEventListener("ended", () => { row.remove(); delete window.__room.tracks[key]; });
}

function onPeerJoined({ peer: remote }) {
  window.__room.peers[remote.id] = { metadata: remote.metadata ?? null };
  peerItem(remote);
  remote.on("track", (ev) => onTrack(remote, ev));
  remote.on("negotiation-error", ({ err }) => setStatus(`negotiation with ${remote.id}: ${err.message}`, true));
}

function onPeerLeft({ peer: remote }) {
  delete window.__room.peers[remote.id];
  for (const k of Object.keys(window.__room.tracks)) if (k.startsWith(`${remote.id}/`)) delete window.__room.tracks[k];
  document.getElementById(`peer-${remote.id}`)?.remove();
  $("no-peers").hidden = Object.keys(window.__room.peers).length > 0;
}

async function join(event) {
  event.preventDefault();
  const channel = $("channel").value.trim();
  const url = location.origin.replace(/^http/, "ws");
  const peer = new MeteredPeer({ apiKey: $("key").value.trim(), url });
  state.peer = peer;
  peer.on("state-change", ({ to }) => { window.__room.state = to; setStatus(`State: ${to}`); });
  peer.on("joined", ({ peerId }) => { window.__room.peerId = peerId; setStatus(`Joined ${channel} as ${peerId}.`); });
  peer.on("peer-joined", onPeerJoined);
  peer.on("peer-left", onPeerLeft);
  peer.on("error", ({ err }) => setStatus(err.message, true));
  $("join").disabled = true;
  try {
    await peer.join(channel);
    $("leave").disabled = false;
    $("mic").disabled = false;
  } catch (err) {
    setStatus(`Could not join: ${err.message}`, true);
    $("join").disabled = false;
  }
}

async function toggleMic() {
  if (!state.mic) {
    try {
      state.micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      setStatus(`Microphone: ${err.message}`, true);
      return;
    }
    state.mic = state.micStream.getAudioTracks()[0];
    state.peer.addTrack(state.mic, state.micStream, { role: "microphone", label: $("name").value.trim() || "browser" });
  } else {
    state.mic.enabled = !state.mic.enabled;
  }
  $("mic").textContent = state.mic.enabled ? "Microphone off" : "Microphone on";
}

async function leave() {
  await state.peer?.close();
  state.micStream?.getTracks().forEach((t) => t.stop());
  Object.assign(state, { peer: null, mic: null, micStream: null });
  for (const li of document.querySelectorAll("li.peer")) li.remove();
  window.__room.peers = {};
  window.__room.tracks = {};
  $("no-peers").hidden = false;
  $("join").disabled = false;
  $("leave").disabled = true;
  $("mic").disabled = true;
  $("mic").textContent = "Microphone on";
  setStatus("Left.");
}

$("join-form").addEventListener("submit", join);
$("leave").addEventListener("click", leave);
$("mic").addEventListener("click", toggleMic);

// A dev server hands out its publishable key; a configured one may not.
fetch("/room-config.json").then((r) => (r.ok ? r.json() : null)).then((cfg) => {
  if (cfg?.publishableKey && !$("key").value) $("key").value = cfg.publishableKey;
  const q = new URLSearchParams(location.search);
  if (q.get("channel")) $("channel").value = q.get("channel");
  if (q.get("name")) $("name").value = q.get("name");
  if (q.get("autojoin") === "1") $("join-form").requestSubmit();
}).catch(() => {});

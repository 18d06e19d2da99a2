// An echo agent in JavaScript: joins the channel named in its config,
// publishes one audio track, and plays back the first remote audio track it
// receives, frame for frame. The same behaviour as guests/rust/echo.
//
// It targets the `reactor` world (wit/handler.wit): the host calls in once per
// room event and per frame, and the agent returns after each. SpiderMonkey
// collects garbage between calls, not during one, so this keeps a JS agent's
// memory bounded (a JS agent blocking in `run` grows until its cap).
//
// Config (JSON): {"channel": "room-1", "buffer": 1.0} (defaults: channel "echo",
// at most 1 s buffered before push blocks).
//
// metered:world reactor
// Build: guests/build js   (or see guests/js/README.md)

import { AudioSource } from 'metered:realtime/audio-source@0.1.0';
import { FrameIterator } from 'metered:realtime/frame-iterator@0.1.0';
import { log } from 'metered:realtime/log@0.1.0';
import { Room } from 'metered:realtime/room@0.1.0';

// 60 ms of 48 kHz stereo s16 silence: a jitter buffer. Frames arrive with
// network jitter but play out on a strict 20 ms clock; without headroom each
// late frame is an underrun (a gap of silence in the echo).
const PRIMING = new Uint8Array(3 * 960 * 4);

function parseConfig(text) {
  try {
    const cfg = JSON.parse(text);
    return cfg !== null && typeof cfg === 'object' ? cfg : {};
  } catch {
    return {};
  }
}

// Host errors arrive as thrown values carrying the WIT `error` variant.
function describe(e) {
  const v = e && e.payload !== undefined ? e.payload : e;
  return v && v.tag ? `${v.tag}${v.val !== undefined ? `: ${v.val}` : ''}` : String(v);
}

// What the agent keeps between calls.
let room;
let source;
let following; // { trackId, frames } once a remote audio track arrived

export const handler = {
  start(config) {
    const cfg = parseConfig(config);
    const channel = typeof cfg.channel === 'string' ? cfg.channel : 'echo';
    const buffer = typeof cfg.buffer === 'number' ? cfg.buffer : 1.0;
    try {
      room = Room.join(channel);
    } catch (e) {
      throw `join ${channel}: ${describe(e)}`;
    }
    // Remote tracks arrive as 48 kHz stereo: push them as they are.
    try {
      source = AudioSource.create({ inputRate: 48000, inputLayout: 'stereo', maxBufferedSeconds: buffer });
      room.addTrack(source.track(), 'echo', '{"role":"echo","label":"Echo"}');
    } catch (e) {
      throw `audio source: ${describe(e)}`;
    }
    log('info', `echo agent ${room.peerId()} in ${channel}`);
    return 'more';
  },

  onRoomEvent(event) {
    if (event.tag !== 'track' || event.val.kind !== 'audio' || following !== undefined) return 'more';
    source.push(PRIMING);
    // Holding an iterator is what makes the host deliver the track's frames.
    following = { trackId: event.val.track.id(), frames: new FrameIterator(event.val.track) };
    return 'more';
  },

  onFrame(trackId, frame) {
    if (frame.tag !== 'audio') return 'more';
    const audio = frame.val;
    try {
      if (audio.sampleRate === 48000 && audio.channels === 2) {
        source.push(audio.samples);
      } else {
        source.pushFrame(audio);
      }
    } catch (e) {
      log('warn', `push: ${describe(e)}`);
    }
    return 'more';
  },

  onTrackEnded(trackId) {
    if (following === undefined || following.trackId !== trackId) return 'more';
    following = undefined;
    source.end();
    source.waitForPlayout();
    return 'finish';
  },
};

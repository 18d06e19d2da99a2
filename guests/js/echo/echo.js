// An echo agent in JavaScript: joins the channel named in its config, publishes
// one audio track, and plays back the first remote audio track it receives,
// frame for frame. The same behaviour as guests/rust/echo.
//
// Config (JSON): {"channel": "room-1", "buffer": 1.0} (defaults: channel "echo",
// at most 1 s buffered before push blocks).
//
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

export const run = {
  run(config) {
    const cfg = parseConfig(config);
    const channel = typeof cfg.channel === 'string' ? cfg.channel : 'echo';
    const buffer = typeof cfg.buffer === 'number' ? cfg.buffer : 1.0;

    let room;
    try {
      room = Room.join(channel);
    } catch (e) {
      throw `join ${channel}: ${describe(e)}`;
    }
    // Remote tracks arrive as 48 kHz stereo: push them as they are.
    let source;
    try {
      source = AudioSource.create({ inputRate: 48000, inputLayout: 'stereo', maxBufferedSeconds: buffer });
      room.addTrack(source.track(), 'echo', '{"role":"echo","label":"Echo"}');
    } catch (e) {
      throw `audio source: ${describe(e)}`;
    }
    log('info', `echo agent ${room.peerId()} in ${channel}`);

    // Wait for the first remote audio track.
    let track;
    for (;;) {
      const event = room.nextEvent();
      if (event === undefined || event === null) return;
      if (event.tag === 'track' && event.val.kind === 'audio') {
        track = event.val.track;
        break;
      }
    }

    const frames = new FrameIterator(track);
    source.push(PRIMING);
    for (;;) {
      const frame = frames.next();
      if (frame === undefined || frame === null) break;
      if (frame.tag !== 'audio') continue;
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
    }
    source.end();
    source.waitForPlayout();
  },
};

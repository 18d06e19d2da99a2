"""An echo agent in Python: joins the channel named in its config, publishes one
audio track, and plays back the first remote audio track it receives, frame for
frame. The same behaviour as guests/rust/echo.

Config (JSON): {"channel": "room-1", "buffer": 1.0} (defaults: channel "echo",
at most 1 s buffered before push blocks).

Build: guests/build python   (or see guests/python/README.md)
"""

import json

from wit_world.types import Err
from wit_world import exports
from wit_world.imports.audio_source import AudioSource, InputLayout, Options
from wit_world.imports.frame_iterator import FrameIterator
from wit_world.imports.log import Level, log
from wit_world.imports.room import Room, RoomEvent_Track
from wit_world.imports.types import Frame_Audio, MediaKind

# 60 ms of 48 kHz stereo s16 silence: a jitter buffer. Frames arrive with network
# jitter but play out on a strict 20 ms clock; without headroom each late frame
# is an underrun (a gap of silence in the echo).
PRIMING = bytes(3 * 960 * 4)


class Run(exports.Run):
    def run(self, config: str) -> None:
        try:
            cfg = json.loads(config) if config else {}
        except ValueError:
            cfg = {}
        if not isinstance(cfg, dict):
            cfg = {}
        channel = cfg.get("channel") if isinstance(cfg.get("channel"), str) else "echo"
        buffer = cfg.get("buffer") if isinstance(cfg.get("buffer"), (int, float)) else 1.0

        try:
            room = Room.join(channel)
        except Err as e:
            raise Err(f"join {channel}: {e.value}")
        # Remote tracks arrive as 48 kHz stereo: push them as they are.
        try:
            source = AudioSource.create(Options(48_000, InputLayout.STEREO, float(buffer)))
            room.add_track(source.track(), "echo", '{"role":"echo","label":"Echo"}')
        except Err as e:
            raise Err(f"audio source: {e.value}")
        log(Level.INFO, f"echo agent {room.peer_id()} in {channel}")

        # Wait for the first remote audio track.
        while True:
            event = room.next_event()
            if event is None:
                return
            if isinstance(event, RoomEvent_Track) and event.value.kind == MediaKind.AUDIO:
                track = event.value.track
                break

        frames = FrameIterator(track)
        source.push(PRIMING)
        while True:
            frame = frames.next()
            if frame is None:
                break
            if not isinstance(frame, Frame_Audio):
                continue
            audio = frame.value
            try:
                if audio.sample_rate == 48_000 and audio.channels == 2:
                    source.push(audio.samples)
                else:
                    source.push_frame(audio)
            except Err as e:
                log(Level.WARN, f"push: {e.value}")
        source.end()
        source.wait_for_playout()

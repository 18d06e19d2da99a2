"""The official Python SDK's MeteredPeer in a room with a Rust MeteredPeer.

Usage: peer_audio.py ARGS_JSON
  ARGS_JSON: {"url", "key", "channel", "mode": "rust_leaves" | "py_leaves" | "replace",
              "freq", "amp"}

Sends an AudioSource tone (stream "py-voice", metadata role/label), waits for the
Rust peer's track, measures the tone on the decoded frames (zero crossings and
RMS), reports it to the room as {"py": {...}}, then per mode:
  rust_leaves: keeps iterating until the Rust peer leaves (the iterator must end);
  py_leaves:   closes (the Rust side checks its iterator ends);
  replace:     waits for {"replaced": true} and measures the tone again.
Prints one JSON object with what it observed; the Rust test asserts on it.
"""

import asyncio
import json
import math
import sys
import time

import numpy as np

from metered_realtime import AudioSource, MediaStream, MeteredPeer, iter_frames
from metered_realtime.events import Data, PeerJoined, PeerLeft, Track


def tone_pcm(freq: float, amp: float, start: int, n: int) -> bytes:
    t = (np.arange(start, start + n) / 16_000.0).astype(np.float64)
    return (amp * np.sin(2 * math.pi * freq * t) * 32767).astype("<i2").tobytes()


def analyse(samples: np.ndarray) -> dict:
    """Frequency (the spectrum's peak, Hann window, parabolic interpolation)
    and RMS level. A peak, unlike counting zero crossings, is not moved by a
    few frames of silence or repetition (an underrun on a loaded machine)."""
    x = samples - samples.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    freq = (k + shift) * 48_000.0 / len(x)
    rms = float(np.sqrt(np.mean(samples**2)))
    return {"freq": freq, "dbfs": 20 * math.log10(max(rms, 1e-12)), "samples": int(len(x))}


async def measure(it, skip: int, frames: int) -> dict:
    left = []
    seen = 0
    async for frame in it:
        seen += 1
        if seen <= skip:
            continue
        arr = frame.to_ndarray()  # s16 packed: shape (1, samples*channels)
        ch = len(frame.layout.channels)
        left.append(arr.reshape(-1)[::ch].astype(np.float64) / 32768.0)
        if seen >= skip + frames:
            break
    return {**analyse(np.concatenate(left)), "rate": frame.sample_rate}


async def main() -> None:
    args = json.loads(sys.argv[1])
    out: dict = {"mode": args["mode"]}
    peer = MeteredPeer(api_key=args["key"], url=args["url"])
    tracks: asyncio.Queue = asyncio.Queue()
    data: asyncio.Queue = asyncio.Queue()
    left = asyncio.Event()

    # Track is a RemotePeer event in the Python SDK.
    peer.on(PeerJoined, lambda ev: ev.peer.on(Track, lambda t: tracks.put_nowait(t)))
    peer.on(Data, lambda ev: data.put_nowait(ev.data))
    peer.on(PeerLeft, lambda ev: left.set())

    source = AudioSource(input_rate=16_000, max_buffered_seconds=0.2)

    async def feed() -> None:
        n = 0
        while True:
            await source.push(tone_pcm(args["freq"], args["amp"], n, 320))
            n += 320

    feeder = asyncio.create_task(feed())
    await peer.join(args["channel"])
    out["peer_id"] = peer.peer_id
    peer.add_stream(MediaStream([source], id="py-voice"), {"role": "agent", "label": "Py"})

    t0 = time.monotonic()
    try:
        ev = await asyncio.wait_for(tracks.get(), 20)
    except asyncio.TimeoutError:
        for remote in peer.remote_peers:  # diagnostics for the failure message
            pc = remote.pc
            print(f"remote {remote.id} polite={remote.polite} state={remote.state}", file=sys.stderr)
            for d in (pc.localDescription, pc.remoteDescription):
                print(d and d.type, d and d.sdp, file=sys.stderr)
            for t in pc.getTransceivers():
                print("transceiver", t.mid, t.kind, t.direction, t.currentDirection, file=sys.stderr)
        raise
    out["track_after_s"] = round(time.monotonic() - t0, 3)
    out["stream_ids"] = [s.id for s in ev.streams]
    out["metadata"] = ev.metadata
    out["kind"] = ev.track.kind
    it = iter_frames(ev.track)
    out["heard"] = await asyncio.wait_for(measure(it, 10, 50), 20)
    await peer.send({"py": out["heard"]})

    if args["mode"] == "replace":
        while True:
            msg = await asyncio.wait_for(data.get(), 20)
            if isinstance(msg, dict) and msg.get("replaced"):
                break
        out["heard_after_replace"] = await asyncio.wait_for(measure(it, 10, 50), 20)
        await peer.send({"py_replaced": out["heard_after_replace"]})

    if args["mode"] == "rust_leaves":
        t1 = time.monotonic()

        async def drain() -> int:
            n = 0
            async for _ in it:
                n += 1
            return n

        try:
            await asyncio.wait_for(drain(), 15)
            out["iterator_ended"] = True
        except asyncio.TimeoutError:
            out["iterator_ended"] = False
        out["end_after_s"] = round(time.monotonic() - t1, 3)
        try:
            await asyncio.wait_for(left.wait(), 10)
            out["peer_left"] = True
        except asyncio.TimeoutError:
            out["peer_left"] = False
    else:
        await asyncio.sleep(0.5)

    feeder.cancel()
    await peer.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

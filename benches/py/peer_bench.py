"""The official Python SDK's side of `cargo bench --bench peer`.

Usage: peer_bench.py ARGS_JSON, one of
  {"mode": "latency", "role": "send" | "recv" | "both", "url", "key", "channel",
   "seconds", "spacing_ms"}
      send: an AudioSource pushed in real time (20 ms of 16 kHz mono every 20 ms),
            silent except a 20 ms full-scale burst every spacing_ms; records the
            wall-clock time (ns) just before each burst's push.
      recv: iterates the remote track with iter_frames and records the wall-clock
            time (ns) each burst's onset is yielded (rising edge over -26 dBFS).
      both: one peer of each kind in this process.
  {"mode": "load", "url", "key", "prefix", "peers", "warmup_s", "seconds"}
      `peers` MeteredPeers in rooms of two; each pushes a tone through an
      AudioSource and consumes the other's track with iter_frames. After every
      track is flowing and a warm-up, measures this process's CPU time over the
      window and the frames each peer received in it.
Prints one JSON object. Wall-clock (CLOCK_REALTIME) times are comparable with the
Rust side's SystemTime on the same machine.
"""

import asyncio
import json
import math
import resource
import sys
import time

import numpy as np

from metered_realtime import AudioSource, MediaStream, MeteredPeer, iter_frames
from metered_realtime.events import PeerJoined, StateChange, Track

CHUNK = 320  # 20 ms at 16 kHz
THRESHOLD = 0.05  # -26 dBFS peak: a burst's onset
SILENCE = bytes(CHUNK * 2)


def burst() -> bytes:
    t = np.arange(CHUNK) / 16_000.0
    return (0.8 * np.sin(2 * math.pi * 1_000.0 * t) * 32767).astype("<i2").tobytes()


def tone(freq: float, start: int) -> bytes:
    t = np.arange(start, start + CHUNK) / 16_000.0
    return (0.3 * np.sin(2 * math.pi * freq * t) * 32767).astype("<i2").tobytes()


def watch(peer: MeteredPeer) -> tuple[asyncio.Queue, asyncio.Event]:
    """Track events and 'a remote connection is up' of a peer."""
    tracks: asyncio.Queue = asyncio.Queue()
    connected = asyncio.Event()

    def joined(ev: PeerJoined) -> None:
        ev.peer.on(Track, tracks.put_nowait)
        ev.peer.on(StateChange, lambda s: connected.set() if s.to == "connected" else None)

    peer.on(PeerJoined, joined)
    return tracks, connected


async def sender(args: dict) -> list[int]:
    peer = MeteredPeer(api_key=args["key"], url=args["url"])
    _, connected = watch(peer)
    source = AudioSource(input_rate=16_000, max_buffered_seconds=0.2)
    await peer.join(args["channel"])
    peer.add_stream(MediaStream([source], id="bench-voice"), {"role": "bench"})
    await asyncio.wait_for(connected.wait(), 30)
    pushes: list[int] = []
    every = max(1, int(args["spacing_ms"]) // 20)
    loud = burst()
    warmup = 75  # 1.5 s of silence while the receiver's iterator starts
    ticks = warmup + int(args["seconds"] * 50)
    start = time.monotonic()
    for i in range(ticks):
        marker = i >= warmup and (i - warmup) % every == 0
        if marker:
            pushes.append(time.time_ns())
        await source.push(loud if marker else SILENCE)
        delay = start + (i + 1) * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(0.5)  # the last burst plays out
    await peer.close()
    return pushes


async def receiver(args: dict, deadline_s: float) -> list[int]:
    peer = MeteredPeer(api_key=args["key"], url=args["url"])
    tracks, _ = watch(peer)
    await peer.join(args["channel"])
    onsets: list[int] = []

    async def run() -> None:
        ev = await tracks.get()
        quiet = 0
        async for frame in iter_frames(ev.track):
            now = time.time_ns()
            peak = float(np.abs(frame.to_ndarray()).max()) / 32768.0
            if peak > THRESHOLD:
                if quiet >= 5:
                    onsets.append(now)
                quiet = 0
            else:
                quiet += 1

    try:
        await asyncio.wait_for(run(), deadline_s)
    except asyncio.TimeoutError:
        pass
    await peer.close()
    return onsets


async def latency(args: dict) -> dict:
    deadline = args["seconds"] + 40
    out: dict = {}
    if args["role"] == "send":
        out["pushes"] = await sender(args)
    elif args["role"] == "recv":
        out["onsets"] = await receiver(args, deadline)
    else:
        recv = asyncio.create_task(receiver(args, deadline))
        out["pushes"] = await sender(args)
        out["onsets"] = await recv
    return out


async def load(args: dict) -> dict:
    n = int(args["peers"])
    peers = []
    feeders = []
    counters = [0] * n
    flowing = [asyncio.Event() for _ in range(n)]
    window = {"on": False}

    async def feed(source: AudioSource, freq: float) -> None:
        k = 0
        while True:
            await source.push(tone(freq, k))
            k += CHUNK

    async def consume(i: int, tracks: asyncio.Queue) -> None:
        ev = await tracks.get()
        async for frame in iter_frames(ev.track):
            _ = frame.to_ndarray()  # what a consumer (STT) would do
            flowing[i].set()
            if window["on"]:
                counters[i] += 1

    consumers = []
    for i in range(n):
        peer = MeteredPeer(api_key=args["key"], url=args["url"])
        tracks, _ = watch(peer)
        source = AudioSource(input_rate=16_000, max_buffered_seconds=0.2)
        await peer.join(f"{args['prefix']}-{i // 2}")
        peer.add_stream(MediaStream([source], id=f"load-{i}"), {"role": "bench"})
        feeders.append(asyncio.create_task(feed(source, 300.0 + 40 * i)))
        consumers.append(asyncio.create_task(consume(i, tracks)))
        peers.append(peer)
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flowing)), 60)
    out: dict = {"peers": n, "connect_s": round(time.monotonic() - t0, 3)}
    await asyncio.sleep(args["warmup_s"])
    window["on"] = True
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    await asyncio.sleep(args["seconds"])
    cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    window["on"] = False
    wall = wall1 - wall0
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out.update(
        {
            "wall_s": wall,
            "cpu_s": cpu,
            "frames_min": min(counters),
            "frames_expected": int(wall * 50),
            "max_rss_kib": cpu1.ru_maxrss,
        }
    )
    for t in feeders + consumers:
        t.cancel()
    await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    return out


async def main() -> None:
    args = json.loads(sys.argv[1])
    out = await (latency(args) if args["mode"] == "latency" else load(args))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

"""The official SDK's sources (metered_realtime.from_file / from_rtsp: aiortc's
MediaPlayer on PyAV), measured the same way as the Rust bench
(host/sources/benches/sources.rs) in the same run.

Usage: bench_sdk.py ARGS_JSON
  ARGS_JSON: {"files": {"name": path, ...}, "seconds": s, "rss_players": n,
              "rss_file": path, "rtsp_url": url | null, "rtsp_runs": n}
Prints one JSON object.
"""

import asyncio
import json
import resource
import sys
import time

from aiortc.mediastreams import MediaStreamError
from metered_realtime import from_file, from_rtsp


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


async def play(path: str, seconds: float) -> dict:
    player = from_file(path)
    t_cpu, t0 = cpu(), time.monotonic()
    lateness = []

    async def audio():
        if player.audio is None:
            return 0.0
        first = None
        got = 0.0
        while got < seconds:
            try:
                frame = await player.audio.recv()
            except MediaStreamError:
                break
            now = time.monotonic()
            media = frame.pts / frame.sample_rate
            if first is None:
                first = now - media
            lateness.append((now - first - media) * 1000.0)
            got = media + frame.samples / frame.sample_rate
        return got

    async def video():
        if player.video is None:
            return 0
        n = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            try:
                await player.video.recv()
            except MediaStreamError:
                break
            n += 1
        return n

    media, frames = await asyncio.gather(audio(), video())
    used = cpu() - t_cpu
    wall = time.monotonic() - t0
    for t in (player.audio, player.video):
        if t is not None:
            t.stop()
    base = min(lateness) if lateness else 0.0
    dev = [x - base for x in lateness]
    return {
        "cpu_s_per_media_s": used / max(media if media else wall, 1e-9),
        "media_s": media,
        "video_frames": frames,
        "audio_pacing_p99_ms": percentile(dev, 99),
        "audio_pacing_max_ms": max(dev) if dev else None,
    }


async def rss_per_player(path: str, n: int) -> float:
    before = rss_kib()
    players = [from_file(path, loop=True) for _ in range(n)]
    for p in players:
        if p.video is not None:
            await p.video.recv()
        if p.audio is not None:
            await p.audio.recv()
    await asyncio.sleep(1.0)
    after = rss_kib()
    for p in players:
        for t in (p.audio, p.video):
            if t is not None:
                t.stop()
    return (after - before) / n / 1024.0


async def rtsp_first_frame(url: str, runs: int) -> list:
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        p = from_rtsp(url, transport="tcp")
        await asyncio.wait_for(p.video.recv(), 20)
        out.append((time.monotonic() - t0) * 1000.0)
        for t in (p.audio, p.video):
            if t is not None:
                t.stop()
        await asyncio.sleep(0.5)
    return out


async def main() -> None:
    args = json.loads(sys.argv[1])
    out = {"files": {}}
    for name, path in args["files"].items():
        out["files"][name] = await play(path, args["seconds"])
    out["rss_mib_per_player"] = await rss_per_player(args["rss_file"], args["rss_players"])
    if args.get("rtsp_url"):
        runs = await rtsp_first_frame(args["rtsp_url"], args["rtsp_runs"])
        out["rtsp_first_frame_ms"] = {"median": percentile(runs, 50), "runs": runs}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

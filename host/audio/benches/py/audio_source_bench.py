"""Baseline: the official SDK's AudioSource (metered-realtime, PyAV + asyncio).

Usage: audio_source_bench.py cpu SECONDS | pacing SOURCES SECONDS
Prints one JSON object.

cpu:    push SECONDS of 16 kHz mono in 20 ms chunks, pulling one 48 kHz frame per
        chunk, on a virtual clock (time.monotonic and asyncio.sleep patched so
        the SDK's pacing never waits for real time); reports process CPU time.
pacing: SOURCES sources in real time, each consumed by a task and fed 20 ms per
        frame; reports emission deviation from the 20 ms schedule.
"""

import asyncio
import json
import math
import resource
import sys
import time

import numpy as np

import metered_realtime.media_io as media_io
from metered_realtime import AudioSource

RATE = 16_000
CHUNK = RATE // 50  # 20 ms


def tone(seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.5 * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()


async def cpu(seconds: float) -> dict:
    clock = [0.0]
    real_sleep = asyncio.sleep

    class VirtualTime:
        @staticmethod
        def monotonic() -> float:
            return clock[0]

    async def virtual_sleep(delay, result=None):
        clock[0] += max(0.0, delay)
        return await real_sleep(0, result)

    media_io.time = VirtualTime  # the SDK reads time.monotonic() for pacing
    asyncio.sleep = virtual_sleep
    pcm = tone(seconds)
    src = AudioSource(input_rate=RATE)
    step = CHUNK * 2
    frames = 0
    t0 = time.process_time()
    for i in range(0, len(pcm), step):
        await src.push(pcm[i : i + step])
        await src.recv()
        frames += 1
    cpu_s = time.process_time() - t0
    asyncio.sleep = real_sleep
    return {"audio_seconds": seconds, "frames": frames, "cpu_seconds": cpu_s}


async def pacing(sources: int, seconds: float) -> dict:
    chunk = tone(0.02)
    devs: list[float] = []
    drifts: list[float] = []
    last: list[float] = []

    async def consume(src: AudioSource) -> None:
        first = None
        n = 0
        local = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await src.push(chunk)
            await src.recv()
            now = time.monotonic()
            if first is None:
                first = now
            sched = first + n * 0.02
            local.append(now - sched)
            n += 1
        devs.extend(local[1:])
        last.append(local[-1])
        if len(local) >= 150:
            # Cumulative drift: mean of the last 50 deviations minus the first 50.
            drifts.append(sum(local[-50:]) / 50 - sum(local[1:51]) / 50)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    srcs = [AudioSource(input_rate=RATE) for _ in range(sources)]
    t0, c0 = time.monotonic(), time.process_time()
    await asyncio.gather(*(consume(s) for s in srcs))
    wall, cpu_s = time.monotonic() - t0, time.process_time() - c0
    devs.sort()
    pick = lambda p: devs[min(len(devs) - 1, int(p * (len(devs) - 1)))] * 1000 if devs else None
    return {
        "sources": sources,
        "input": "16 kHz mono (resampled)",
        "starts": "all at once",
        "seconds": seconds,
        "frames": len(devs),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": devs[-1] * 1000 if devs else None,
        "max_abs_deviation_of_last_frame_ms": max(abs(d) for d in last) * 1000,
        "max_abs_drift_ms": max((abs(d) for d in drifts), default=0.0) * 1000,
        "cpu_percent_of_one_core": 100 * cpu_s / wall,
        "cpu_ms_per_audio_second": 1000 * cpu_s / (seconds * sources),
        "peak_rss_growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0,
    }


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "cpu":
        out = asyncio.run(cpu(float(sys.argv[2])))
    else:
        out = asyncio.run(pacing(int(sys.argv[2]), float(sys.argv[3])))
    print(json.dumps(out))

"""The official Python SDK's MeteredPeer (aiortc) exchanging video with a Rust MeteredPeer.

Usage: peer_video.py ARGS_JSON
  ARGS_JSON: {"url", "key", "channel", "codec": "VP8" | "H264", "yuv": [y, u, v]}

aiortc's codec table is narrowed to `codec` (and its rtx), so the session
negotiates only that codec both ways. Sends a 320x240 aiortc VideoStreamTrack
of one colour (stream "py-cam", metadata role/label), waits for the Rust
peer's video track, reads the centre pixel of decoded frames, reports it to
the room as {"py": {...}}, then waits for the Rust peer to leave.
Prints one JSON object with what it observed; the Rust test asserts on it.
"""

import asyncio
import json
import sys

import numpy as np
from aiortc import VideoStreamTrack
from aiortc import codecs as aiortc_codecs
from av import VideoFrame

from metered_realtime import MediaStream, MeteredPeer, iter_frames
from metered_realtime.events import PeerJoined, PeerLeft, Track

W, H = 320, 240


def only(codec: str) -> None:
    """Keep `codec` (and the rtx entries pointing at it) in aiortc's table."""
    video = aiortc_codecs.CODECS["video"]
    kept = [c for c in video if c.mimeType.lower() == f"video/{codec.lower()}"]
    pts = {c.payloadType for c in kept}
    rtx = [c for c in video if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") in pts]
    video[:] = kept + rtx


class Colour(VideoStreamTrack):
    def __init__(self, yuv):
        super().__init__()
        y, u, v = yuv
        self.planes = np.concatenate(
            [np.full((H, W), y, np.uint8), np.full((H // 4, W), u, np.uint8), np.full((H // 4, W), v, np.uint8)]
        )

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.planes, format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


def centre(frame) -> dict:
    arr = frame.to_ndarray(format="yuv420p")
    h, w = frame.height, frame.width
    u = arr[h : h + h // 4].reshape(h // 2, w // 2)
    v = arr[h + h // 4 :].reshape(h // 2, w // 2)
    return {"yuv": [int(arr[h // 2, w // 2]), int(u[h // 4, w // 4]), int(v[h // 4, w // 4])], "size": [w, h]}


async def main() -> None:
    args = json.loads(sys.argv[1])
    only(args["codec"])
    out: dict = {"codec": args["codec"]}
    peer = MeteredPeer(api_key=args["key"], url=args["url"])
    tracks: asyncio.Queue = asyncio.Queue()
    left = asyncio.Event()
    peer.on(PeerJoined, lambda ev: ev.peer.on(Track, lambda t: tracks.put_nowait(t)))
    peer.on(PeerLeft, lambda ev: left.set())

    await peer.join(args["channel"])
    peer.add_stream(MediaStream([Colour(args["yuv"])], id="py-cam"), {"role": "camera", "label": "Py cam"})

    ev = await asyncio.wait_for(tracks.get(), 20)
    out["kind"] = ev.track.kind
    out["stream_ids"] = [s.id for s in ev.streams]
    out["metadata"] = ev.metadata
    seen = 0
    last = None

    async def read() -> None:
        nonlocal seen, last
        async for frame in iter_frames(ev.track):
            seen += 1
            if seen > 5:
                last = centre(frame)
            if seen >= 25:
                return

    await asyncio.wait_for(read(), 20)
    out["frames"] = seen
    out["seen"] = last
    await peer.send({"py": out})
    try:
        await asyncio.wait_for(left.wait(), 20)
        out["peer_left"] = True
    except asyncio.TimeoutError:
        out["peer_left"] = False
    await peer.close()
    print(json.dumps(out))


asyncio.run(main())

"""The official Python SDK's data channels against a Rust MeteredPeer.

Usage: peer_datachannel.py ARGS_JSON
  ARGS_JSON: {"url", "key", "channel"}

1. Opens "py-chan" to the (single) remote peer, sends a text and a binary
   message, and collects what comes back on it until it has two replies.
2. Waits for the Rust peer to open "rust-chan", reads its messages until
   {"done"} and answers each text message with "py:<text>" and each binary
   one with its length and byte sum.
Prints one JSON object with what it observed; the Rust test asserts on it.
"""

import asyncio
import json
import sys

from metered_realtime import DataChannel, MeteredPeer
from metered_realtime.events import DataChannelOpened, DCMessage, DCOpen, PeerJoined


async def main() -> None:
    args = json.loads(sys.argv[1])
    out: dict = {}
    peer = MeteredPeer(api_key=args["key"], url=args["url"])
    joined: asyncio.Queue = asyncio.Queue()
    opened: asyncio.Queue = asyncio.Queue()
    inbox: asyncio.Queue = asyncio.Queue()

    def on_opened(ev: DataChannelOpened) -> None:
        # Wrap and listen at once: a message that arrives before a listener is lost.
        channel = DataChannel(ev.channel)
        channel.on(DCMessage, lambda e: inbox.put_nowait(e.data))
        opened.put_nowait((ev.channel.label, channel))

    def on_peer(ev: PeerJoined) -> None:
        ev.peer.on(DataChannelOpened, on_opened)
        joined.put_nowait(ev.peer)

    peer.on(PeerJoined, on_peer)
    await peer.join(args["channel"])
    remote = await asyncio.wait_for(joined.get(), 20)

    # 1. Our channel: send, collect the replies.
    ours = DataChannel(remote.create_data_channel("py-chan"))
    is_open = asyncio.Event()
    replies: asyncio.Queue = asyncio.Queue()
    ours.on(DCOpen, lambda _e: is_open.set())
    ours.on(DCMessage, lambda e: replies.put_nowait(e.data))
    await asyncio.wait_for(is_open.wait(), 20)
    await ours.send("hello from py")
    await ours.send(bytes(range(256)) * 4)
    got = []
    for _ in range(2):
        d = await asyncio.wait_for(replies.get(), 20)
        got.append(d if isinstance(d, str) else {"bytes": len(d), "sum": sum(d)})
    out["replies"] = got

    # 2. Theirs: answer until {"done"}.
    out["their_label"], theirs = await asyncio.wait_for(opened.get(), 20)
    received = []
    while True:
        d = await asyncio.wait_for(inbox.get(), 20)
        if d == "done":
            break
        if isinstance(d, str):
            received.append(d)
            await theirs.send("py:" + d)
        else:
            received.append({"bytes": len(d), "sum": sum(d)})
            await theirs.send(json.dumps({"bytes": len(d), "sum": sum(d)}))
    out["received"] = received
    await asyncio.sleep(0.3)
    ours.close()
    theirs.close()
    await peer.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

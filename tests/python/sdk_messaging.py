"""Drives the official Python SDK (metered-realtime) against a `metered serve`.

Usage: sdk_messaging.py SCENARIO ARGS_JSON
Prints one JSON object with what the SDK observed; the Rust test asserts on it.
"""

import asyncio
import json
import pathlib
import sys
import urllib.request

from metered_realtime import (
    Connected,
    Direct,
    Disconnected,
    GoingAway,
    Message,
    Presence,
    SignallingClient,
)
from metered_realtime.errors import ServerRequestError, SignallingConnectError
from metered_realtime.options import ReconnectOptions, SubscribeOptions


class Recorder:
    """Collects a client's events and lets the scenario await them."""

    def __init__(self, client: SignallingClient) -> None:
        self.events: list = []
        self.changed = asyncio.Event()
        for kind in (Connected, Disconnected, Message, Direct, Presence, GoingAway):
            client.on(kind, self._record)

    def _record(self, event) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_for(self, predicate, timeout: float = 10.0):
        async def loop():
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def client(args, **kw) -> tuple[SignallingClient, Recorder]:
    c = SignallingClient(url=args["url"], **kw)
    return c, Recorder(c)


async def server_error(coro) -> str:
    try:
        await coro
    except ServerRequestError as e:
        return e.code
    return "no error"


async def connect_error(args, **kw):
    c = SignallingClient(url=args["url"], reconnect=False, **kw)
    try:
        await c.connect()
    except SignallingConnectError as e:
        return e.close_code
    finally:
        await c.close()
    return None


def peers(ps) -> list:
    return sorted(p.peer_id for p in ps)


async def pubsub(args) -> dict:
    a, ra = client(args, api_key=args["key"])
    b, rb = client(args, api_key=args["key"])
    await a.connect()
    await b.connect()
    ca, cb = ra.of(Connected)[0], rb.of(Connected)[0]
    out = {"a": ca.peer_id, "b": cb.peer_id, "max_message_size": ca.max_message_size, "expires_at": ca.expires_at}
    await a.subscribe("room")
    snap_a = await ra.wait_for(lambda e: isinstance(e, Presence))
    await b.subscribe("room")
    snap_b = await rb.wait_for(lambda e: isinstance(e, Presence))
    join = await ra.wait_for(lambda e: isinstance(e, Presence) and e.joined and e is not snap_a)
    out["snapshot_a"] = peers(snap_a.joined)
    out["snapshot_b"] = peers(snap_b.joined)
    out["join_seen_by_a"] = peers(join.joined)
    await b.publish("room", {"text": "h\u00e9llo \u2603", "n": [1, 2.5, None, True]})
    msg = await ra.wait_for(lambda e: isinstance(e, Message))
    out["message"] = {"channel": msg.channel, "from": msg.sender_peer_id, "data": msg.data, "meta": msg.sender_metadata}
    await a.send(cb.peer_id, "psst")
    direct = await rb.wait_for(lambda e: isinstance(e, Direct))
    out["direct"] = {"from": direct.sender_peer_id, "data": direct.data}
    await asyncio.sleep(0.2)
    out["b_echoes"] = len(rb.of(Message))
    out["errors"] = {
        "reserved": await server_error(a.subscribe("_metered/x")),
        "reserved_upper": await server_error(a.subscribe("_SYSTEM/x")),
        "unknown_peer": await server_error(a.send("nobody", 1)),
    }
    await b.unsubscribe("room")
    left = await ra.wait_for(lambda e: isinstance(e, Presence) and e.left)
    out["left_on_unsubscribe"] = peers(left.left)
    await b.subscribe("room")
    await ra.wait_for(lambda e: isinstance(e, Presence) and e.joined and e is not snap_a and e is not join)
    await b.close()
    gone = await ra.wait_for(lambda e: isinstance(e, Presence) and e.left and e is not left)
    out["left_on_disconnect"] = peers(gone.left)
    await a.close()
    return out


def token_provider(token: str):
    async def provide() -> str:
        return token

    return provide


def presence_peers(ps) -> list:
    return sorted(({"peer_id": p.peer_id, "metadata": p.metadata} for p in ps), key=lambda p: p["peer_id"])


async def tokens(args) -> dict:
    meta_client, rm = client(args, token_provider=token_provider(args["meta_token"]))
    listener, rl = client(args, api_key=args["key"])
    plain, rp = client(args, api_key=args["key"])
    await meta_client.connect()
    await listener.connect()
    await plain.connect()
    conn = rm.of(Connected)[0]
    out = {
        "peer_id": conn.peer_id,
        "expires_at": conn.expires_at,
        "key_peers": sorted([rl.of(Connected)[0].peer_id, rp.of(Connected)[0].peer_id]),
    }
    await listener.subscribe("room-1", SubscribeOptions(include_sender_metadata=True))
    await plain.subscribe("room-1")
    await meta_client.subscribe("room-1")
    snapshot = await rm.wait_for(lambda e: isinstance(e, Presence))
    out["snapshot_seen_by_token_peer"] = presence_peers(snapshot.joined)
    join = await rl.wait_for(lambda e: isinstance(e, Presence) and any(p.peer_id == conn.peer_id for p in e.joined))
    out["join_seen_by_listener"] = presence_peers(join.joined)
    await meta_client.publish("room-1", "hi")
    msg = await rl.wait_for(lambda e: isinstance(e, Message))
    out["sender_metadata"] = msg.sender_metadata
    plain_msg = await rp.wait_for(lambda e: isinstance(e, Message))
    out["plain_subscriber_metadata"] = plain_msg.sender_metadata
    await meta_client.send(rl.of(Connected)[0].peer_id, "direct")
    direct = await rl.wait_for(lambda e: isinstance(e, Direct))
    out["direct_metadata"] = direct.sender_metadata
    await listener.send(conn.peer_id, "back")
    reply = await rm.wait_for(lambda e: isinstance(e, Direct))
    out["key_peer_direct"] = {"from": reply.sender_peer_id, "data": reply.data, "metadata": reply.sender_metadata}
    limited, _ = client(args, token_provider=token_provider(args["limited_token"]))
    await limited.connect()
    out["not_authorized"] = await server_error(limited.subscribe("elsewhere"))
    out["not_permitted"] = await server_error(limited.publish("room-1", 1))
    await limited.close()
    out["expired_close_code"] = await connect_error(args, token_provider=token_provider(args["expired_token"]))
    out["bad_close_code"] = await connect_error(args, token_provider=token_provider("not-a-token"))
    out["bad_key_close_code"] = await connect_error(args, api_key="pk_live_wrong")
    for c in (meta_client, listener, plain):
        await c.close()
    return out


def rest_delete(args, path: str) -> int:
    req = urllib.request.Request(
        args["http"] + path, method="DELETE", headers={"Authorization": args["bearer"]}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


async def kick(args) -> dict:
    """An admin kick (REST DELETE /v1/peers/:id) is final: close 4020, no reconnect."""
    fast = ReconnectOptions(initial_delay=0.05, max_delay=0.3)
    victim, rv = client(args, token_provider=token_provider(args["token"]), reconnect=fast)
    watcher, rw = client(args, api_key=args["key"])
    await victim.connect()
    await watcher.connect()
    await victim.subscribe("lobby")
    await watcher.subscribe("lobby")
    status = await asyncio.to_thread(rest_delete, args, "/v1/peers/" + args["peer_id"])
    dropped = await rv.wait_for(lambda e: isinstance(e, Disconnected))
    left = await rw.wait_for(lambda e: isinstance(e, Presence) and e.left)
    await asyncio.sleep(0.5)
    out = {
        "status": status,
        "code": dropped.code,
        "will_reconnect": dropped.will_reconnect,
        "left": peers(left.left),
        "connects": len(rv.of(Connected)),
    }
    await victim.close()
    await watcher.close()
    return out


async def reconnect(args) -> dict:
    fast = ReconnectOptions(initial_delay=0.05, max_delay=0.3)
    a, ra = client(args, api_key=args["key"], reconnect=fast)
    await a.connect()
    await a.subscribe("room")
    await ra.wait_for(lambda e: isinstance(e, Presence))
    pathlib.Path(args["marker"]).write_text("subscribed")
    going = await ra.wait_for(lambda e: isinstance(e, GoingAway), timeout=20)
    dropped = await ra.wait_for(lambda e: isinstance(e, Disconnected), timeout=20)
    back = await ra.wait_for(lambda e: isinstance(e, Connected) and e.is_reconnect, timeout=20)
    # The replayed subscription is live again: a new client's publish arrives.
    await ra.wait_for(lambda e: isinstance(e, Presence) and e is not ra.of(Presence)[0], timeout=20)
    b, _ = client(args, api_key=args["key"])
    await b.connect()
    await b.publish("room", "after restart")
    msg = await ra.wait_for(lambda e: isinstance(e, Message), timeout=20)
    await b.close()
    await a.close()
    return {
        "retry_after_ms": going.retry_after_ms,
        "disconnect_code": dropped.code,
        "will_reconnect": dropped.will_reconnect,
        "same_peer_id": back.peer_id == ra.of(Connected)[0].peer_id,
        "message_after_restart": msg.data,
    }


SCENARIOS = {"pubsub": pubsub, "tokens": tokens, "kick": kick, "reconnect": reconnect}

if __name__ == "__main__":
    scenario, raw = sys.argv[1], sys.argv[2]
    result = asyncio.run(asyncio.wait_for(SCENARIOS[scenario](json.loads(raw)), 60))
    print(json.dumps(result))

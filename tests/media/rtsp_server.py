#!/usr/bin/python3
"""A live RTSP server for the media-source tests (GStreamer's RTSP server).

Serves one mount on 127.0.0.1 with a live H.264 video stream (a solid colour)
and a live Opus audio stream (a sine tone). The media is shared, so several
clients and reconnects see the same running pipeline. Prints "ready" on stdout
once the server socket is listening; exits on SIGTERM/SIGINT or when stdin
closes (so an orphaned server does not outlive its parent).

Run it with Debian's /usr/bin/python3 (needs python3-gi and
gir1.2-gst-rtsp-server-1.0 plus the GStreamer base/good/bad/ugly plugins).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", default="/stream")
    ap.add_argument("--color", default="FF0000", help="RRGGBB")
    ap.add_argument("--tone", type=float, default=440.0)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--gop", type=int, default=0, help="frames between keyframes (0: fps)")
    args = ap.parse_args()

    Gst.init(None)
    rgb = int(args.color, 16) & 0xFFFFFF
    launch = (
        "( videotestsrc is-live=true pattern=solid-color foreground-color={argb} "
        "! video/x-raw,width={w},height={h},framerate={fps}/1 "
        "! videoconvert ! video/x-raw,format=I420 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} "
        "! video/x-h264,profile=constrained-baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=1 "
        "audiotestsrc is-live=true wave=sine freq={tone} "
        "! audio/x-raw,rate=48000,channels=2 "
        "! audioconvert ! audioresample ! opusenc "
        "! rtpopuspay name=pay1 pt=97 )"
    ).format(
        argb=0xFF000000 | rgb,
        w=args.width,
        h=args.height,
        fps=args.fps,
        gop=args.gop or args.fps,
        tone=args.tone,
    )

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print("error: cannot listen on 127.0.0.1:%d" % args.port, file=sys.stderr, flush=True)
        return 2

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    GLib.io_add_watch(
        sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_HUP | GLib.IO_ERR | GLib.IO_IN,
        lambda *_: (loop.quit(), False)[1],
    )
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Python peers of the benchmark: ``python -m bench.peer ROLE [options]``.

Each peer is one process, launched by the runner exactly like the C reference programs (same
options: ``--ifname --netns --count --size --cpu --ready-fd --pool --timeout --quiet ...``); it
enters the namespace (for the whole process), pins itself to ``--cpu``, does its job, and prints
ONE JSON line on stdout. A role whose library piece is missing prints
``{"skipped": "<what is missing>"}`` and exits 0, so the runner reports it in the table.

Roles
    tx-socket        plain ``socket.send`` loop over a pool of pre-stamped frames
    tx-scapy         scapy ``sendp`` of a list of pre-built scapy packets (pool)
    tx-netring-stream  ``netring.Injector.send_stream`` (C stamps each frame from the template)
    tx-netring-batch   ``netring.Injector.send_batch`` over a pool of pre-stamped frames
    tx-netring-xdpinject  ``netring.XdpInjector.send_stream`` (in-kernel live frames; stamped IPv4/UDP,
                     UDP checksum patched per frame by the generator program)
    rx-netring       ``netring.Capture`` + ``netring.check.SeqChecker`` (C block checker)
    rx-netring-drop  built-in ``drop`` XDP program attached natively with ``netring.xdp.attach``
    rx-netring-xsk   ``netring.XdpSocket`` (copy mode, built-in ``xsk`` program) + ``drain`` with the C
                     ``SeqChecker``; ``--busy``: busy-poll options on the socket
    rx-scapy         scapy ``sniff`` counting the bench frames
    bridge           ``netring.Bridge(--ifname, --peer-ifname)`` in the middle namespace; forwards until
                     its stdin closes (or ``--timeout``), then prints the bridge's counters
    engine           the scenario engine's round trip (both roles in one process)

Frames are byte-identical to the C reference's (except tx-netring-xdpinject's, see there) (bench/ref/common.h): Ethernet to the non-local
MAC 02:4e:52:00:00:99, ethertype 0x88B5, zero payload, netring stamp in the last 20 bytes.
"""
import argparse
import ctypes
import json
import os
import sys
import time

from bench.common import Skip, rss_kib

DST_MAC = bytes.fromhex("024e52000099")
SRC_MAC = bytes.fromhex("024e52000001")
ETHERTYPE = 0x88B5


def bench_frame(size, stream_id, seq):
    """One benchmark frame of ``size`` bytes carrying the stamp (stream_id, seq) — same bytes as the C reference."""
    from netring import stamp

    f = bytearray(size)
    f[0:6] = DST_MAC
    f[6:12] = SRC_MAC
    f[12:14] = ETHERTYPE.to_bytes(2, "big")
    off = size - stamp.STAMP_LEN
    stamp.write(f, stream_id, seq, off - 14, offset=off)
    return bytes(f)


def _enter(args):
    """Enter the namespace (whole process: every later thread inherits it) and pin to the CPU."""
    if args.netns:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(args.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, 0x40000000) != 0:
                err = ctypes.get_errno()
                raise OSError(err, "setns(%s): %s" % (args.netns, os.strerror(err)))
        finally:
            os.close(fd)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})


def _ready(args):
    if args.ready_fd >= 0:
        os.write(args.ready_fd, b"R")
        os.close(args.ready_fd)
        args.ready_fd = -1


def _need(modname, attr=None):
    import importlib

    try:
        mod = importlib.import_module(modname)
    except ImportError as exc:
        raise Skip("%s not importable (%s)" % (modname, exc)) from None
    if attr is not None:
        obj = mod
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise Skip("%s.%s missing" % (modname, attr))
            obj = getattr(obj, part)
        return obj
    return mod


# -- senders --------------------------------------------------------------------------------------
def _pool(args):
    return [bench_frame(args.size, args.stream_id, s) for s in range(args.pool)]


def tx_socket(args):
    """Plain Python: ``sock.send(frame)`` per frame over a pool of pre-stamped frames."""
    import socket

    frames = _pool(args)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((args.ifname, 0))
    send, n, pool = s.send, args.count, args.pool
    deadline = time.monotonic() + args.timeout
    sent = 0
    t0 = time.monotonic_ns()
    while sent < n:
        try:
            send(frames[sent % pool])
        except OSError:  # ENOBUFS: retry this frame
            if time.monotonic() > deadline:
                break
            continue
        sent += 1
        if not sent & 0xFFF and time.monotonic() > deadline:
            break
    t1 = time.monotonic_ns()
    s.close()
    return {"role": "tx", "impl": "py-socket", "sent": sent, "t_start_ns": t0, "t_end_ns": t1, "max_rss_kib": rss_kib()}


def tx_scapy(args):
    """scapy ``sendp`` of a list of scapy packets built beforehand (scapy builds each one's bytes in sendp)."""
    try:
        from scapy.all import Ether, Raw, conf, sendp
    except ImportError as exc:
        raise Skip("scapy not installed (%s); `pip install scapy` to add this baseline" % exc) from None
    conf.verb = 0
    pkts = []
    for s in range(args.pool):
        f = bench_frame(args.size, args.stream_id, s)
        pkts.append(Ether(dst="02:4e:52:00:00:99", src="02:4e:52:00:00:01", type=ETHERTYPE) / Raw(load=f[14:]))
    seq = [pkts[i % args.pool] for i in range(args.count)]
    t0 = time.monotonic_ns()
    sendp(seq, iface=args.ifname, verbose=False)
    t1 = time.monotonic_ns()
    return {"role": "tx", "impl": "scapy-sendp", "sent": len(seq), "t_start_ns": t0, "t_end_ns": t1, "max_rss_kib": rss_kib()}


def _injector(args):
    Injector = _need("netring", "Injector")
    try:
        return Injector(args.ifname, frame_size=2048, frame_count=args.frame_count)
    except TypeError as exc:
        raise Skip("netring.Injector signature differs from the contract: %s" % exc) from None


def _drain_tx(inj, args, deadline):
    for name in ("flush",):
        if hasattr(inj, name):
            getattr(inj, name)()
    if hasattr(inj, "wait_drained"):
        inj.wait_drained(timeout=max(0.1, deadline - time.monotonic()))


def tx_netring_stream(args):
    """``Injector.send_stream([template], sid, 0, count)``: C stamps every frame (O(1) from the payload hash)."""
    inj = _injector(args)
    if not hasattr(inj, "send_stream"):
        inj.close()
        raise Skip("netring.Injector.send_stream missing")
    tmpl = bench_frame(args.size, args.stream_id, 0)
    deadline = time.monotonic() + args.timeout
    with inj:
        t0 = time.monotonic_ns()
        n = inj.send_stream([tmpl], args.stream_id, 0, args.count, timeout=args.timeout)
        _drain_tx(inj, args, deadline)
        t1 = time.monotonic_ns()
    return {"role": "tx", "impl": "netring-send_stream", "sent": int(n), "t_start_ns": t0, "t_end_ns": t1,
            "max_rss_kib": rss_kib()}


def tx_netring_batch(args):
    """``Injector.send_batch(chunk)`` over chunks of ``--batch`` pre-stamped frames cycled from a pool."""
    inj = _injector(args)
    frames = _pool(args)
    b = args.batch
    chunks = [frames[i:i + b] for i in range(0, len(frames), b)]
    deadline = time.monotonic() + args.timeout
    sent = 0
    with inj:
        send_batch = inj.send_batch
        t0 = time.monotonic_ns()
        ci = 0
        while sent < args.count:
            chunk = chunks[ci]
            ci = (ci + 1) % len(chunks)
            if sent + len(chunk) > args.count:
                chunk = chunk[:args.count - sent]
            while chunk:
                r = send_batch(chunk)
                r = len(chunk) if r is None else int(r)
                sent += r
                chunk = chunk[r:]
                if chunk and time.monotonic() > deadline:
                    break
            if time.monotonic() > deadline:
                break
        _drain_tx(inj, args, deadline)
        t1 = time.monotonic_ns()
    return {"role": "tx", "impl": "netring-send_batch", "sent": sent, "t_start_ns": t0, "t_end_ns": t1,
            "max_rss_kib": rss_kib()}


def tx_netring_xdpinject(args):
    """``XdpInjector.send_stream([template], sid, 0, count, csum_offsets=[off])`` with ``batch_size=64``.

    The template is the scenario engine's stamped Ethernet/IPv4/UDP frame of ``--size`` B (to the
    same non-local MAC), so the generator program does the whole job the engine asks of it: seq,
    stamp check and the RFC 1624 UDP checksum patch per frame. The receiver counts drops only.
    """
    XdpInjector = _need("netring", "XdpInjector")
    from bench import engine_case

    tmpl, csum_off = engine_case.udp_template(args.size)
    with XdpInjector(args.ifname, batch_size=64) as gen:
        t0 = time.monotonic_ns()
        n = gen.send_stream([tmpl], args.stream_id, 0, args.count, csum_offsets=[csum_off], timeout=args.timeout)
        t1 = time.monotonic_ns()
    return {"role": "tx", "impl": "netring-xdpinject", "sent": int(n), "t_start_ns": t0, "t_end_ns": t1,
            "frame": "ipv4/udp %d B" % len(tmpl), "max_rss_kib": rss_kib()}


# -- receivers ------------------------------------------------------------------------------------
def rx_netring(args):
    """``Capture`` + ``SeqChecker``: every retired block fed to the C checker in one call."""
    Capture = _need("netring", "Capture")
    SeqChecker = _need("netring.check", "SeqChecker")
    cap = Capture(args.ifname, block_size=args.block_size, block_count=args.block_count,
                  block_timeout_ms=args.block_timeout_ms)
    chk = SeqChecker({args.stream_id: args.pool})
    sid = args.stream_id
    t_first = t_last = 0
    received = 0
    timed_out = False
    with cap:
        _ready(args)
        deadline = time.monotonic() + args.timeout
        quiet_ns = int(args.quiet * 1e9)
        while received < args.count:
            batch = cap.next_batch(timeout=0.01)
            now = time.monotonic_ns()
            if batch is None:
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                if t_last and now - t_last > quiet_ns:
                    break
                continue
            with batch:
                chk.feed(batch)
            c = chk.counts(sid)
            r = c.delivered + c.duplicated + c.corrupted
            if r > received:
                received = r
                t_last = time.monotonic_ns()
                t_first = t_first or t_last
        stats = cap.stats()
    c = chk.counts(sid)
    return {"role": "rx", "impl": "netring-capture", "expected": args.count, "pool": args.pool, "received": received,
            "delivered": c.delivered, "lost": c.lost, "duplicated": c.duplicated, "reordered": c.reordered,
            "corrupted": c.corrupted, "unexpected": chk.unexpected,
            "kernel_packets": getattr(stats, "packets", None), "kernel_drops": getattr(stats, "drops", None),
            "t_first_ns": t_first, "t_last_ns": t_last, "timed_out": timed_out, "max_rss_kib": rss_kib()}


def rx_netring_drop(args):
    """Built-in ``drop`` program attached natively; polls its drop counter like the C reference polls its map."""
    builtin = _need("netring.bpf.programs", "builtin")
    attach = _need("netring.xdp", "attach")
    prog = builtin("drop")
    att = attach(args.ifname, prog, mode="native")
    t_first = t_last = 0
    val = prev = 0
    timed_out = False
    try:
        _ready(args)
        deadline = time.monotonic() + args.timeout
        quiet_ns = int(args.quiet * 1e9)
        while True:
            val = att.counters()["drop"]["packets"]
            now = time.monotonic_ns()
            if val != prev:
                t_first = t_first or now
                t_last = now
                prev = val
            if val >= args.count:
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if t_last and now - t_last > quiet_ns:
                break
            time.sleep(0.0005)
    finally:
        att.detach()
        if hasattr(prog, "close"):
            prog.close()
    return {"role": "rx", "impl": "netring-xdp-drop", "expected": args.count, "dropped": val,
            "t_first_ns": t_first, "t_last_ns": t_last, "timed_out": timed_out, "max_rss_kib": rss_kib()}


def rx_netring_xsk(args):
    """``XdpSocket`` in copy mode on queue 0 (it attaches the built-in ``xsk`` program), drained into
    the C ``SeqChecker`` by ``XdpSocket.drain`` — the AF_XDP twin of :func:`rx_netring`."""
    import inspect

    XdpSocket = _need("netring", "XdpSocket")
    SeqChecker = _need("netring.check", "SeqChecker")
    # the C receiver's geometry (bench/ref/xskrx.c): 16384 frames of 4096 B, an RX ring of 8192
    kw = dict(queue=0, frame_size=4096, frame_count=16384, ring_size=8192, mode="copy", attach="auto")
    if args.busy:
        kw["busy_poll_us"] = 20
    try:
        params = inspect.signature(XdpSocket).parameters
    except (TypeError, ValueError):
        params = {}
    missing = [k for k in kw if params and k not in params and not any(
        p.kind == p.VAR_KEYWORD for p in params.values())]
    if missing:
        raise Skip("netring.XdpSocket lacks the contract's options %s" % ",".join(missing))
    if not hasattr(XdpSocket, "drain"):
        raise Skip("netring.XdpSocket.drain missing")
    chk = SeqChecker({args.stream_id: args.pool})
    with XdpSocket(args.ifname, **kw) as xsk:
        _ready(args)
        t0 = time.monotonic_ns()
        xsk.drain(chk, timeout=args.timeout, quiet=args.quiet)
        t_end = time.monotonic_ns()
        stats = xsk.stats()
        mode = getattr(xsk, "mode", None)
    c = chk.counts(args.stream_id)
    received = c.delivered + c.duplicated + c.corrupted
    # drain returns right after the last frame when the checker is done, else after `quiet` of silence;
    # the first frame's time it does not report (t_first_ns 0)
    t_last = t_end if chk.done else t_end - int(args.quiet * 1e9)
    st = {k: getattr(stats, k, None) for k in ("rx_dropped", "rx_invalid_descs", "rx_ring_full",
                                                 "rx_fill_ring_empty_descs")}
    return dict({"role": "rx", "impl": "netring-xsk" + ("-busy" if args.busy else ""), "mode": mode,
                 "expected": args.count, "pool": args.pool, "received": received, "delivered": c.delivered,
                 "lost": c.lost, "duplicated": c.duplicated, "reordered": c.reordered, "corrupted": c.corrupted,
                 "unexpected": chk.unexpected, "t_ready_ns": t0, "t_first_ns": 0, "t_last_ns": t_last, "done": chk.done,
                 "max_rss_kib": rss_kib()}, **st)


def rx_scapy(args):
    """scapy ``sniff`` counting the bench frames (ethertype 0x88B5) as they arrive; no per-frame checking."""
    try:
        from scapy.all import AsyncSniffer, conf
    except ImportError as exc:
        raise Skip("scapy not installed (%s); `pip install scapy` to add this baseline" % exc) from None
    conf.verb = 0
    box = {"n": 0, "first": 0, "last": 0}

    def seen(pkt):
        if getattr(pkt, "type", None) == ETHERTYPE:
            now = time.monotonic_ns()
            box["n"] += 1
            box["first"] = box["first"] or now
            box["last"] = now

    # sniff has no "quiet" stop of its own: run it in the background and stop it like the other receivers
    sn = AsyncSniffer(iface=args.ifname, store=False, prn=seen, started_callback=lambda: _ready(args))
    sn.start()
    deadline = time.monotonic() + args.timeout
    quiet_ns = int(args.quiet * 1e9)
    try:
        while box["n"] < args.count and time.monotonic() < deadline:
            time.sleep(0.02)
            if box["last"] and time.monotonic_ns() - box["last"] > quiet_ns:
                break
    finally:
        sn.stop()
    return {"role": "rx", "impl": "scapy-sniff", "expected": args.count, "received": box["n"],
            "t_first_ns": box["first"], "t_last_ns": box["last"], "timed_out": box["n"] < args.count,
            "max_rss_kib": rss_kib()}


# -- the forwarding node ---------------------------------------------------------------------------
def bridge(args):
    """``netring.Bridge(--ifname, --peer-ifname)``, unimpaired, its RX rings of the receivers' geometry
    (``--block-size``/``--block-count``; the other options at their defaults), in this process (pinned to ``--cpu``: both forwarding threads inherit it). Ready once both directions
    forward; runs until the runner closes stdin (after the receiver finished) or ``--timeout`` passes,
    then stops the bridge and reports its per-direction counters and how many frames it lost
    (``dropped + queue_full + tx_dropped + too_long + rx_dropped`` of the forwarding direction)."""
    import select

    Bridge = _need("netring", "Bridge")
    if not args.peer_ifname:
        raise Skip("bridge needs --peer-ifname (the interface it forwards to)")
    timed_out = False
    with Bridge(args.ifname, args.peer_ifname, block_size=args.block_size, block_count=args.block_count) as br:
        br.start()
        _ready(args)
        t0 = time.monotonic_ns()
        deadline = time.monotonic() + args.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            rl, _, _ = select.select([sys.stdin], [], [], min(left, 0.2))
            if rl and not os.read(sys.stdin.fileno(), 4096):  # EOF: the runner is done with us
                break
        br.stop()
        t1 = time.monotonic_ns()
        st = br.stats()
    fwd = st.a_to_b
    lost = fwd.dropped + fwd.queue_full + fwd.tx_dropped + fwd.too_long + fwd.rx_dropped
    return {"role": "bridge", "impl": "netring-bridge", "stats": st.as_dict(), "received": fwd.received,
            "forwarded": fwd.forwarded, "lost": lost, "t_start_ns": t0, "t_end_ns": t1, "timed_out": timed_out,
            "max_rss_kib": rss_kib()}


def engine(args):
    """The scenario engine's round trip: the same stream through the YAML runner, in this process."""
    from bench import engine_case

    return engine_case.run(args)


ROLES = {
    "tx-socket": tx_socket,
    "tx-scapy": tx_scapy,
    "tx-netring-stream": tx_netring_stream,
    "tx-netring-batch": tx_netring_batch,
    "tx-netring-xdpinject": tx_netring_xdpinject,
    "rx-netring": rx_netring,
    "rx-netring-drop": rx_netring_drop,
    "rx-netring-xsk": rx_netring_xsk,
    "rx-scapy": rx_scapy,
    "bridge": bridge,
    "engine": engine,
}


def parser():
    """The command-line options every peer (Python or C) understands."""
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__.split("\n")[0])
    p.add_argument("role", choices=sorted(ROLES))
    p.add_argument("--ifname", required=True)
    p.add_argument("--peer-ifname", help="engine: the receiving interface (in --peer-netns); bridge: side b")
    p.add_argument("--netns")
    p.add_argument("--peer-netns")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--pool", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--cpu", type=int, default=-1)
    p.add_argument("--ready-fd", type=int, default=-1)
    p.add_argument("--stream-id", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--quiet", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--block-size", type=int, default=1 << 20)
    p.add_argument("--block-count", type=int, default=8)
    p.add_argument("--block-timeout-ms", type=int, default=10)
    p.add_argument("--frame-count", type=int, default=1024)
    p.add_argument("--engine-cpus", default="", help="engine: TX,RX CPUs for the engine's sender and checker threads")
    p.add_argument("--variant", default="ring", help="engine: which scenario (bench.engine_case.VARIANTS)")
    p.add_argument("--busy", action="store_true", help="rx-netring-xsk: busy-poll options on the socket")
    return p


def main(argv=None):
    """Run one peer role; print its JSON line; exit 0 (also when skipped), 2 on error."""
    args = parser().parse_args(argv)
    if args.pool <= 0 or args.pool > args.count:
        args.pool = args.count
    try:
        if args.role != "engine":
            _enter(args)
        out = ROLES[args.role](args)
    except Skip as exc:
        out = {"skipped": str(exc)}
    except Exception as exc:  # reported as one JSON line, so the runner can show it in the table
        out = {"error": "%s: %s" % (type(exc).__name__, exc)}
        print(json.dumps(out))
        sys.stdout.flush()
        return 2
    finally:
        _ready(args)  # never leave the runner waiting (skips and errors release it too)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

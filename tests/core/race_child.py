"""Child process for test_close_race.py: close a Capture/Injector from one thread while another
is inside a call on it, ``ROUNDS`` times with varied timing.

Usage: ``python race_child.py SCENARIO ROUNDS SEED``. Prints one ``OUTCOME name`` line per round
and ``DONE`` at the end; exits 1 (printing the traceback) if a call raised anything but a
NetringError, 2 if a thread did not come back after close(). A segfault kills the process
(rc -11): run it in a subprocess.
"""
import faulthandler
import random
import sys
import threading
import time
import traceback

faulthandler.enable()

from netring import Capture, Injector, NetringError, SeqChecker  # noqa: E402

from core_frames import mixed_frames, stamped  # noqa: E402
from core_net import VethPair  # noqa: E402


def outcome_of(fn):
    """Run fn in a thread; returns (thread, box) where box gets "ok:..." or "err:Type" or "BAD:traceback"."""
    box = []
    started = threading.Event()

    def body():
        started.set()
        try:
            r = fn()
            box.append("ok:%s" % type(r).__name__)
        except NetringError as e:
            box.append("err:%s" % type(e).__name__)
        except BaseException:
            box.append("BAD:" + traceback.format_exc())

    th = threading.Thread(target=body, daemon=True)
    th.start()
    started.wait()
    return th, box


def close_during(obj, fn, rnd, max_delay):
    th, box = outcome_of(fn)
    time.sleep(rnd.uniform(0, max_delay))
    try:
        obj.close()
    except BaseException:
        box.append("BAD(close):" + traceback.format_exc())
    th.join(10)
    if th.is_alive():
        print("HANG: the thread did not return after close()", flush=True)
        sys.exit(2)
    if not obj.closed:
        box.append("BAD: close() returned but the object is not closed")
    return box


def traffic(v, stop):
    """Frames onto the link from a separate Injector until ``stop`` is set (bounded: ≤ 200 rounds)."""
    frames = mixed_frames(64, seed=3, hi=400)
    with Injector(v.tx_if, netns=v.a) as tx:
        for _ in range(200):
            if stop.is_set():
                return
            tx.send_batch(frames, timeout=0.2)
            time.sleep(0.002)


def rounds(v, scenario, n, rnd):
    frame = mixed_frames(1, seed=1, lo=1000, hi=1000)[0]
    tmpl, off = stamped(200)
    for _ in range(n):
        if scenario == "next_batch":
            cap = Capture(v.rx_if, netns=v.b)
            box = close_during(cap, lambda: cap.next_batch(timeout=2.0), rnd, 0.05)
        elif scenario == "drain":
            cap = Capture(v.rx_if, netns=v.b)
            chk = SeqChecker({1: 10})
            box = close_during(cap, lambda: cap.drain(chk, timeout=2.0), rnd, 0.05)
        elif scenario == "rx_busy":
            # frames flowing: the receiver iterates, copies, feeds a checker, releases — close hits anywhere
            cap = Capture(v.rx_if, netns=v.b, block_size=4096, block_timeout_ms=1)
            chk = SeqChecker({1: 10})

            def rx():
                got = 0
                for _ in range(10_000):
                    b = cap.next_batch(timeout=0.5)
                    if b is None:
                        continue
                    with b:
                        got += sum(len(bytes(p.data)) for p in b)
                        chk.feed(b)
                        b.descriptors()
                return got

            stop = threading.Event()
            gen = threading.Thread(target=traffic, args=(v, stop))
            gen.start()
            try:
                time.sleep(0.02)
                box = close_during(cap, rx, rnd, 0.1)
            finally:
                stop.set()
                gen.join()
        elif scenario == "send_batch":
            tx = Injector(v.tx_if, netns=v.a, frame_count=64)
            box = close_during(tx, lambda: [tx.send_batch([frame] * 256, timeout=2) for _ in range(500)], rnd, 0.05)
        elif scenario == "send_stream":
            tx = Injector(v.tx_if, netns=v.a, frame_count=64)
            box = close_during(tx, lambda: tx.send_stream([tmpl], 1, 0, 1_000_000, rate_pps=5000,
                                                          csum_offsets=[off], timeout=3), rnd, 0.05)
        elif scenario == "slots":
            tx = Injector(v.tx_if, netns=v.a, frame_count=64)

            def slots():
                for _ in range(100_000):
                    s = tx.allocate(100)
                    if s is None:
                        tx.wait_drained(0.5)
                        continue
                    s.data[:14] = frame[:14]
                    s.send()
                    tx.flush()
                    tx.counts()

            box = close_during(tx, slots, rnd, 0.05)
        else:
            raise SystemExit("unknown scenario %r" % scenario)
        for o in box:
            if o.startswith("BAD"):
                print(o, flush=True)
                sys.exit(1)
            print("OUTCOME", o, flush=True)


def main():
    scenario, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    v = VethPair()
    try:
        rounds(v, scenario, n, random.Random(seed))
    finally:
        v.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()

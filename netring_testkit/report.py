"""Reports and artifacts of scenario runs: the JSON report, pcap files, per-scenario JSON.

``--netring-report FILE`` writes :func:`write_report` output: one JSON document with an entry
per scenario (status, per-stream counts, pps, duration, counters). ``--netring-artifacts DIR``
makes :func:`write_artifacts` store, for each failed (or errored) scenario, ``<id>.json`` (its
full result) and ``<id>.pcapng``: a bounded sample of what was sent (the first and last frames
of each stream), of what arrived at each capture (its first and last frames) and the
unexpected frames the captures kept, each packet carrying a comment that says which
(``sent stream main seq 0``, ``arrived at rx:eth0 (stream main seq 0)``, ``unexpected at
rx:eth0``). pcapng (:func:`netring.pcap.write_pcapng`) is read by tcpdump, tshark and Wireshark
(``tshark -r F -T fields -e frame.comment``); :func:`read_pcapng` reads it back.
"""
import json
import os
import platform
import re
import time

from netring import pcap

from . import framelog

__all__ = ["write_pcap", "read_pcap", "write_pcapng", "read_pcapng", "PcapngPacket", "write_artifacts",
           "write_report", "safe_name", "REPORT_VERSION", "STATUSES"]

REPORT_VERSION = 1
#: Every status a scenario record can have; the report's ``summary`` counts each, zeros included.
STATUSES = ("passed", "failed", "error", "skipped")
#: pcap and pcapng are written and read by :mod:`netring.pcap`; these names stay for readers of the report.
PcapngPacket = pcap.PcapngPacket
write_pcap = pcap.write_pcap
write_pcapng = pcap.write_pcapng
read_pcapng = pcap.read_pcapng


def read_pcap(path):
    """The frames (bytes) of a classic pcap file, in order (:func:`netring.pcap.read` has the rest)."""
    return [f.data for f in pcap.read_pcap(path).frames]


def safe_name(scenario_id):
    """A file-name-safe form of a scenario id (``udp[size=64]`` → ``udp_size=64_``)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", scenario_id)


def write_artifacts(directory, result):
    """Store a failed scenario's JSON result and pcapng in ``directory``; return the paths written.

    Both are named after the scenario id made file-safe (:func:`safe_name`). The pcapng holds,
    each packet commented: the frames ``result.sent_samples`` lists (``sent stream S seq N``,
    on an interface block named after the sender endpoint), those of ``result.arrived_samples``
    (``arrived at EP (stream S seq N)``) and ``result.unexpected_frames`` (``unexpected at EP``);
    one interface block per endpoint and role. With ``result.arrived_all``
    (``--netring-artifacts-all``) the arrived frames are every frame each capture saw, each
    commented with the checker's verdict (:func:`netring_testkit.framelog.classify`: ``arrived at
    EP: reordered: stream S seq N (after seq M)``). It is written for every failure, even when
    nothing arrived. The JSON names it (``artifacts``, and ``pcapng`` with the packet counts).
    """
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, safe_name(result.scenario.id))
    names = {st.stream_id: st.name for st in result.scenario.streams}
    ifaces, index, packets = [], {}, []
    counts = {"sent": 0, "arrived": 0, "unexpected": 0}

    def iface(ep, role, description):
        key = (ep, role)
        if key not in index:
            index[key] = len(ifaces)
            ifaces.append((ep, description))
        return index[key]

    for smp in result.sent_samples:
        i = iface(smp.at, "sent", "sent by %s (first and last frames of each stream)" % smp.at)
        packets.append((i, smp.timestamp_ns, smp.data, "sent stream %s seq %d" % (smp.stream, smp.seq)))
        counts["sent"] += 1
    if result.arrived_all:  # every frame, with the checker's verdict on each (--netring-artifacts-all)
        streams = {st.stream_id: (st.name, st.count) for st in result.scenario.streams}
        for ep, frames in sorted(result.arrived_samples.items()):
            i = iface(ep, "arrived", "arrived at %s (every frame, classified by the checker's rules)" % ep)
            for (ts, fr), what in zip(frames, framelog.classify([f for _, f in frames], streams)):
                packets.append((i, ts, fr, "arrived at %s: %s" % (ep, what)))
                counts["arrived"] += 1
    for ep, frames in () if result.arrived_all else sorted(result.arrived_samples.items()):  # the sample
        i = iface(ep, "arrived", "arrived at %s (first and last frames of the capture)" % ep)
        for ts, fr in frames:
            st = _stamp_of(fr)
            what = "" if st is None else " (stream %s seq %d%s)" % (
                names.get(st.stream_id, "#%d" % st.stream_id), st.seq, "" if st.ok else ", check failed")
            packets.append((i, ts, fr, "arrived at %s%s" % (ep, what)))
            counts["arrived"] += 1
    end_ns = int((result.started + result.duration) * 1e9)
    for ep, frames in sorted(result.unexpected_frames.items()):
        if not frames:
            continue
        i = iface(ep, "unexpected", "unexpected at %s (first frames without a known stamp)" % ep)
        for fr in frames:
            packets.append((i, end_ns, fr, "unexpected at %s" % ep))
            counts["unexpected"] += 1
    if not ifaces:  # a run that ended before sending: still a file readers open (tcpdump wants an IDB)
        ifaces.append(("none", "no frame was sent or seen"))
    pcap = write_pcapng(base + ".pcapng", ifaces, packets)
    result.artifacts = [pcap, base + ".json"]
    doc = result.as_dict()
    doc["pcapng"] = dict(file=os.path.basename(pcap), **counts)
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    return [pcap, base + ".json"]


def _stamp_of(frame):
    from netring import stamp

    try:
        return stamp.read(frame)
    except Exception:  # a frame too short or odd to decode: no stamp
        return None


def write_report(path, records, duration=None):
    """Write the ``--netring-report`` JSON: environment, summary and one record per scenario.

    ``summary`` counts the records of every status in :data:`STATUSES`, zeros included, so a
    consumer can read ``summary["error"]`` without guessing; a record with another status (none
    today) adds its own key.
    """
    path = os.fspath(path)
    summary = dict.fromkeys(STATUSES, 0)
    for r in records:
        summary[r.get("status", "unknown")] = summary.get(r.get("status", "unknown"), 0) + 1
    doc = {
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duration_s": duration,
        "summary": summary,
        "scenarios": records,
    }
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)
    return path

"""Reports and artifacts of scenario runs: the JSON report, pcap files, per-scenario JSON.

``--netring-report FILE`` writes :func:`write_report` output: one JSON document with an entry
per scenario (status, per-stream counts, pps, duration, counters). ``--netring-artifacts DIR``
makes :func:`write_artifacts` store, for each failed scenario, ``<id>.json`` (its full result)
and ``<id>.pcap`` (the unexpected/corrupt frames the captures kept), in classic libpcap format
readable by tcpdump and Wireshark.
"""
import json
import os
import platform
import re
import struct
import time

__all__ = ["write_pcap", "read_pcap", "write_artifacts", "write_report", "safe_name", "REPORT_VERSION", "STATUSES"]

REPORT_VERSION = 1
#: Every status a scenario record can have; the report's ``summary`` counts each, zeros included.
STATUSES = ("passed", "failed", "error", "skipped")
_PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
_LINKTYPE_ETHERNET = 1


def safe_name(scenario_id):
    """A file-name-safe form of a scenario id (``udp[size=64]`` → ``udp_size=64_``)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", scenario_id)


def write_pcap(path, frames, snaplen=65535, timestamp=None):
    """Write ``frames`` (bytes-like) to ``path`` as a classic little-endian libpcap file (Ethernet)."""
    path = os.fspath(path)
    ts = time.time() if timestamp is None else timestamp
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, snaplen, _LINKTYPE_ETHERNET))
        for i, fr in enumerate(frames):
            fr = bytes(fr)
            cap = fr[:snaplen]
            t = ts + i * 1e-6
            f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(cap), len(fr)))
            f.write(cap)
    return path


def read_pcap(path):
    """Frames of a classic libpcap file written by :func:`write_pcap` (for tests and tools)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic != _PCAP_MAGIC:
        raise ValueError("%s is not a little-endian microsecond pcap file" % path)
    off, frames = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, off)
        off += 16
        frames.append(data[off:off + incl])
        off += incl
    return frames


def write_artifacts(directory, result):
    """Store a failed scenario's JSON result and pcap in ``directory``; return the paths written."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, safe_name(result.scenario.id))
    paths = []
    frames = [fr for frs in result.unexpected_frames.values() for fr in frs]
    if frames:
        paths.append(write_pcap(base + ".pcap", frames))
    result.artifacts = list(paths) + [base + ".json"]
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump(result.as_dict(), f, indent=2, default=str)
        f.write("\n")
    paths.append(base + ".json")
    return paths


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

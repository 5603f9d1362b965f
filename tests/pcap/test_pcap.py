"""netring.pcap: pcap round trips (µs/ns, both byte orders), pcapng read (a file Wireshark's editcap
wrote; hand-built sections in both byte orders with simple packets and unknown blocks), pcapng
write with comments, damaged files as typed errors, tcpdump reading what we write, Capture.to_pcap."""
import os
import re
import shutil
import struct
import subprocess

import pytest

from netring import ConfigurationError, PcapError, pcap
from netring_testkit import frames

DATA = os.path.join(os.path.dirname(__file__), "data")
TCPDUMP = shutil.which("tcpdump")
T0 = 1_700_000_000_123_456_789


def sample(n=6):
    out = []
    for i in range(n):
        f = frames.build(eth={"dst": "02:00:00:aa:00:01", "src": "02:00:00:aa:00:02"}, ipv4={},
                         udp={"sport": 1000 + i, "dport": 9}, payload=bytes([i]) * (3 + 97 * i), stamp=(5, i))
        out.append((T0 + i * 1_000_001, f))
    return out


def tcpdump_lines(path):
    """``tcpdump -r`` of a file: one line per packet (raises if tcpdump refuses the file)."""
    res = subprocess.run([TCPDUMP, "-nn", "-r", str(path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_pcap_round_trip_is_identical(tmp_path, nanosecond, byteorder):
    frs = sample()
    p = pcap.write_pcap(tmp_path / "t.pcap", frs, nanosecond=nanosecond, byteorder=byteorder)
    tr = pcap.read(p)
    assert (tr.format, tr.byteorder, tr.nanosecond, tr.linktype) == ("pcap", byteorder, nanosecond, 1)
    assert [f.data for f in tr] == [f for _, f in frs]
    want = [ts if nanosecond else ts // 1000 * 1000 for ts, _ in frs]
    assert [f.timestamp_ns for f in tr] == want
    assert [f.orig_len for f in tr] == [len(f) for _, f in frs]
    # a second write of what was read gives the same bytes
    p2 = pcap.write_pcap(tmp_path / "u.pcap", tr.frames, nanosecond=nanosecond, byteorder=byteorder)
    assert open(p, "rb").read() == open(p2, "rb").read()


def test_snaplen_cuts_frames_and_keeps_the_wire_length(tmp_path):
    frs = sample()
    tr = pcap.read(pcap.write_pcap(tmp_path / "s.pcap", frs, snaplen=64))
    assert [len(f.data) for f in tr] == [min(64, len(f)) for _, f in frs]
    assert [f.orig_len for f in tr] == [len(f) for _, f in frs]


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed (ci/setup installs it)")
@pytest.mark.parametrize("kind", ["pcap-us", "pcap-ns-be", "pcapng", "pcapng-be"])
def test_tcpdump_reads_what_we_write(tmp_path, kind):
    frs = sample()
    if kind == "pcap-us":
        p = pcap.write_pcap(tmp_path / "t.pcap", frs)
    elif kind == "pcap-ns-be":
        p = pcap.write_pcap(tmp_path / "t.pcap", frs, nanosecond=True, byteorder=">")
    else:
        p = pcap.write_pcapng(tmp_path / "t.pcapng", [("eth0", "a test interface")],
                              [(0, ts, f, "frame %d" % i) for i, (ts, f) in enumerate(frs)],
                              byteorder=">" if kind == "pcapng-be" else "<")
    lines = tcpdump_lines(p)
    assert len(lines) == len(frs)
    for i, line in enumerate(lines):
        assert "198.18.0.1.%d > 198.18.0.2.9: UDP" % (1000 + i) in line, line
    assert lines[0].startswith("22:13:20.123456")


def test_pcapng_written_by_editcap_is_read():
    tr = pcap.read(os.path.join(DATA, "editcap.pcapng"))
    assert tr.format == "pcapng" and tr.byteorder == "<" and len(tr) == 5
    assert tr.interfaces[0].linktype == 1 and tr.interfaces[0].snaplen == 65535
    assert [f.timestamp_ns for f in tr] == [1_700_000_000_123_456_000 + i * 1_000_000 for i in range(5)]
    assert [f.comment for f in tr] == [None, "second frame, commented by editcap", None, None, None]
    for i, f in enumerate(tr):
        assert frames.parse(f.data)["udp"]["sport"] == 1000 + i
        assert f.orig_len == len(f.data)


def _blk(bo, btype, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def _opt(bo, code, value):
    return struct.pack(bo + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _section(bo, frs):
    """A hand-built pcapng section: SHB, an unknown block, IDB (tsresol 2^-20), EPB, custom block, SPB."""
    shb = _blk(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    unknown = _blk(bo, 0x00000BAD, b"skip me, I am a block nobody knows")
    idb = _blk(bo, 1, struct.pack(bo + "HHI", 1, 0, 0) + _opt(bo, 2, b"hand0") + _opt(bo, 9, b"\x94")
               + struct.pack(bo + "HH", 0, 0))
    (ts, f0), (_, f1) = frs
    units = ts * (1 << 20) // 1_000_000_000
    epb = _blk(bo, 6, struct.pack(bo + "IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(f0), len(f0)) + f0
               + b"\0" * (-len(f0) % 4) + _opt(bo, 1, b"hello") + struct.pack(bo + "HH", 0, 0))
    custom = _blk(bo, 0x00000BAD, struct.pack(bo + "I", 32473) + b"vendor data")
    spb = _blk(bo, 3, struct.pack(bo + "I", len(f1)) + f1)
    return shb + unknown + idb + epb + custom + spb, units * 1_000_000_000 // (1 << 20)


def test_pcapng_both_byte_orders_simple_packets_unknown_blocks_and_sections(tmp_path):
    frs = sample(4)
    le, ts_le = _section("<", frs[:2])
    be, ts_be = _section(">", frs[2:])
    p = tmp_path / "hand.pcapng"
    p.write_bytes(le + be)
    tr = pcap.read(p)
    assert tr.format == "pcapng" and tr.byteorder == "<"
    assert [f.data for f in tr] == [f for _, f in frs]
    assert [f.interface for f in tr] == [0, 0, 1, 1]  # each section's interfaces, in file order
    assert [i.name for i in tr.interfaces] == ["hand0", "hand0"]
    assert [f.timestamp_ns for f in tr] == [ts_le, 0, ts_be, 0]  # a simple packet has no timestamp
    assert abs(ts_le - frs[0][0]) < 1000  # 2^-20 s units: within a microsecond
    assert [f.comment for f in tr] == ["hello", None, "hello", None]


def test_pcapng_write_with_comments_round_trips(tmp_path):
    frs = sample()
    pk = [(i % 2, ts, f, "frame %d" % i if i != 3 else None) for i, (ts, f) in enumerate(frs)]
    p = pcap.write_pcapng(tmp_path / "c.pcapng", [("tx:eth0", "sent"), ("rx:eth0", None)], pk)
    got = pcap.read_pcapng(p)
    assert [(g.interface, g.description, g.timestamp_ns, g.data, g.comment) for g in got] == [
        ("tx:eth0" if i % 2 == 0 else "rx:eth0", "sent" if i % 2 == 0 else None, ts, f,
         "frame %d" % i if i != 3 else None) for i, (ts, f) in enumerate(frs)]


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x00" * 30, "not a pcap or pcapng file (magic 0x00000000)"),
    (lambda b: b[:10], "shorter than a pcap header"),
    (lambda b: b[:-5], "does not fit the file"),
    (lambda b: b[:24 + 9], "truncated record header"),
])
def test_damaged_pcap_is_a_located_error(tmp_path, mutate, message):
    good = open(pcap.write_pcap(tmp_path / "g.pcap", sample(2)), "rb").read()
    p = tmp_path / "bad.pcap"
    p.write_bytes(mutate(good))
    with pytest.raises(PcapError, match=re.escape(message)) as ei:
        pcap.read(p)
    assert ei.value.path == str(p) and ei.value.offset is not None


def test_damaged_pcapng_is_a_located_error(tmp_path):
    good = open(pcap.write_pcapng(tmp_path / "g.pcapng", [("e", None)], [(0, T0, sample(1)[0][1], None)]), "rb").read()
    p = tmp_path / "bad.pcapng"
    p.write_bytes(good[:-3])
    with pytest.raises(PcapError, match="bad length|truncated") as ei:
        pcap.read(p)
    assert ei.value.offset > 0
    with pytest.raises(PcapError, match="classic pcap file, not pcapng"):
        pcap.read_pcapng(pcap.write_pcap(tmp_path / "x.pcap", []))
    with pytest.raises(PcapError, match="frames\\[0\\] is a int"):
        pcap.write_pcap(tmp_path / "y.pcap", [7])


@pytest.mark.privileged
def test_capture_to_pcap_writes_what_arrived(tmp_path, veth_pair):
    a, b = veth_pair
    frs = [f for _, f in sample()]
    cap = b.capture(protocol=0x0800)  # IPv4 only: the link's IPv6 chatter stays out
    with pytest.raises(ConfigurationError, match="needs count= or timeout="):
        cap.to_pcap(tmp_path / "never.pcap")
    a.injector().send_batch(frs)
    n = cap.to_pcap(tmp_path / "cap.pcap", count=4, timeout=5.0)
    rest = cap.to_pcap(tmp_path / "rest.pcap", timeout=0.3)
    assert (n, rest) == (4, 2)
    tr = pcap.read(tmp_path / "cap.pcap")
    assert tr.nanosecond and [f.data for f in tr] == frs[:4]
    assert [f.data for f in pcap.read(tmp_path / "rest.pcap")] == frs[4:]
    if TCPDUMP:
        assert len(tcpdump_lines(tmp_path / "cap.pcap")) == 4


# -- writer arguments ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    ((T0, 5), "record 0 data is a int, not a bytes-like object"),      # bytes(5) would be five zero bytes
    ((T0, "ab"), "record 0 data is a str"),
    ((T0, None), "record 0 data is a NoneType"),
    ((None, b"ab"), "record 0 timestamp_ns must be a number, not None"),
    ((-1, b"ab"), "record 0 timestamp_ns=-1 is outside 0.."),           # would wrap to the year 2106
    ((float("nan"), b"ab"), "record 0 timestamp_ns=nan is outside"),
    ((1 << 62, b"ab"), "is outside 0.."),                               # beyond a u32 of seconds
    ((1, b"ab", -1), "record 0 orig_len=-1 is outside 2..4294967295"),
    ((1, b"ab", 1), "record 0 orig_len=1 is outside 2.."),              # shorter than the data given
    ((1, b"ab", 1 << 32), "orig_len=4294967296 is outside"),
    ((1, b"ab", 2.5), "record 0 orig_len must be an integer"),
])
def test_writer_refuses_bad_records_with_a_pcap_error_and_writes_nothing(tmp_path, args, message):
    path = tmp_path / "w.pcap"
    with pcap.PcapWriter(path) as w:
        w.write(T0, b"first")
        with pytest.raises(PcapError) as ei:
            w.write(*args)
        assert message.replace("record 0", "record 1") in str(ei.value)
        assert w.count == 1
    assert [f.data for f in pcap.read(str(path)).frames] == [b"first"]


def test_writer_takes_orig_len_equal_or_longer_and_bytes_likes(tmp_path):
    path = tmp_path / "w.pcap"
    with pcap.PcapWriter(path) as w:
        w.write(0, bytearray(b"ab"), 2)
        w.write(T0, memoryview(b"abcd"), 1500)
    got = pcap.read(str(path)).frames
    assert [(f.data, f.orig_len) for f in got] == [(b"ab", 2), (b"abcd", 1500)]
    assert got[0].timestamp_ns == 0


@pytest.mark.parametrize("frames_arg, message", [
    ([(T0, b"ok"), (T0, 100)], "frames[1] data is a int"),
    ([(-5, b"ab")], "frames[0] timestamp_ns=-5 is outside"),
    ([(None, b"ab")], "frames[0] timestamp_ns must be a number"),
    ([b"ab", 7], "frames[1] is a int, not bytes"),
])
def test_write_pcap_names_the_bad_frame(tmp_path, frames_arg, message):
    with pytest.raises(PcapError) as ei:
        pcap.write_pcap(str(tmp_path / "x.pcap"), frames_arg)
    assert message in str(ei.value)


def test_write_pcap_refuses_a_negative_default_timestamp(tmp_path):
    with pytest.raises(PcapError, match="timestamp=-1 is outside"):
        pcap.write_pcap(str(tmp_path / "x.pcap"), [b"ab"], timestamp=-1)


def test_write_pcapng_refuses_bad_packets(tmp_path):
    for pkt, message in (((0, T0, 60, None), "packets[0] frame is a int"),
                         ((0, -1, b"ab", None), "packets[0] timestamp_ns=-1 is outside"),
                         ((True, T0, b"ab", None), "packets[0] interface True")):
        with pytest.raises(PcapError, match=re.escape(message)):
            pcap.write_pcapng(str(tmp_path / "x.pcapng"), [("eth0", None)], [pkt])

"""Verdicts, failure messages, reports, pcap artifacts and template frames (no privileges needed)."""
import json
import struct
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netring import stamp
from netring.errors import ScenarioError
from netring_testkit import frames, report, runner, scenario as sc
from netring_testkit.verdict import ScenarioResult, StreamResult, decode_frame, evaluate

SPEC = textwrap.dedent("""\
    scenarios:
      - name: filt
        description: drop one of two streams
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        xdp: [{attach: rx:eth0, program: filter, rules: [{match: {udp: {dport: 9}}, action: drop}]}]
        traffic:
          - {name: dropped, from: tx:eth0, to: rx:eth0, count: 100, frame: {udp: {dport: 9}}}
          - {name: kept, from: tx:eth0, to: rx:eth0, count: 100, frame: {udp: {dport: 10}}}
        expect:
          streams: {dropped: {delivered: none}, kept: {delivered: all}}
          xdp: {rx:eth0: {drop: 100, pass: ">= 100"}}
          interface: {rx:eth0: {rx_packets: ">= 200"}}
    """)


def make(**over):
    s = sc.load_text(SPEC, "f.yaml")[0]
    r = ScenarioResult(s)
    r.streams = [StreamResult("dropped", 0, "rx:eth0", 100, sent=100, delivered=0),
                 StreamResult("kept", 1, "rx:eth0", 100, sent=100, delivered=100)]
    r.xdp = {"rx:eth0": {"pass": 100, "drop": 100, "aborted": 0}}
    r.interfaces = {"rx:eth0": {"rx_packets": 200, "rx_dropped": 0}}
    r.unexpected = {"rx:eth0": 0}
    r.unexpected_frames = {"rx:eth0": []}
    r.tx_seconds = 0.01
    for k, v in over.items():
        setattr(r, k, v)
    return s, r


def test_all_expectations_met():
    s, r = make()
    assert evaluate(s, r) == []


def test_each_fault_is_reported():
    s, r = make()
    r.streams[1].delivered, r.streams[1].lost = 97, 3
    r.streams[1].reordered, r.streams[1].duplicated, r.streams[1].corrupted = 2, 1, 4
    r.streams[0].delivered = 1
    r.xdp["rx:eth0"]["drop"] = 99
    r.interfaces["rx:eth0"]["rx_packets"] = 150
    fails = evaluate(s, r)
    text = "\n".join(fails)
    assert "stream kept: delivered 97 at rx:eth0, expected all (100)" in text
    assert "stream kept: 2 frames arrived out of order" in text
    assert "stream kept: 1 duplicated frames" in text
    assert "stream kept: 4 frames with a corrupted payload" in text
    assert "stream dropped: delivered 1 at rx:eth0, expected == 0" in text
    assert "xdp rx:eth0: drop counted 99, expected == 100" in text
    assert "interface rx:eth0: rx_packets changed by 150, expected >= 200" in text
    assert "drop not proven: the XDP program on rx:eth0 counted 99 drop/aborted, expected >= 100" in text


def test_short_injection_is_a_failure():
    s, r = make()
    r.streams[1].sent = 50
    assert "stream kept: only 50 of 100 frames were injected" in evaluate(s, r)


def test_render_table_counters_and_decoded_unexpected_frames():
    frame, _ = runner.build_frame(100, 3, src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02",
                                  src_ip="198.18.0.1", dst_ip="198.18.0.2", dport=9)
    s, r = make()
    r.streams[1].delivered, r.streams[1].lost = 97, 3
    r.unexpected = {"rx:eth0": 2}
    r.unexpected_frames = {"rx:eth0": [frame, b"\x01" * 20]}
    r.failures = evaluate(s, r)
    r.status = "failed"
    text = r.render()
    lines = text.splitlines()
    assert lines[0] == "scenario filt (f.yaml:2) FAILED"
    hdr = next(l for l in lines if l.strip().startswith("stream"))
    assert hdr.split() == ["stream", "at", "expected", "sent", "delivered", "lost", "dup", "reorder", "corrupt", "want", "via"]
    row = next(l for l in lines if l.strip().startswith("kept")).split()
    assert row[:9] == ["kept", "rx:eth0", "100", "100", "97", "3", "0", "0", "0"]
    assert "  rx:eth0: pass=100, drop=100, aborted=0" in lines
    assert "unexpected frames at rx:eth0: 2 (first 2):" in lines
    dec = [l for l in lines if "198.18.0.1" in l][0]
    assert "198.18.0.2" in dec and "s3#0" in dec
    assert "FAIL: stream kept: delivered 97" in text


def test_basic_decoder_marks_corruption():
    frame, _ = runner.build_frame(200, 1, src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02")
    assert "stamp s1#0 ok" in decode_frame(frame)
    bad = bytearray(frame)
    bad[60] ^= 0xFF
    assert "CORRUPT" in decode_frame(bytes(bad))
    assert "5 B" in decode_frame(b"\x00" * 5)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_frame_describes_any_bytes(data):
    """The verdict trusts frames.decode (no fallback decoder): any captured bytes give one line, never an error."""
    line = decode_frame(data)
    assert line and "\n" not in line and ("len %d" % len(data)) in line


def test_pcap_roundtrip(tmp_path):
    frames = [b"\x01" * 60, b"\x02" * 1514, b""]
    p = report.write_pcap(tmp_path / "x.pcap", frames)
    raw = (tmp_path / "x.pcap").read_bytes()
    assert struct.unpack_from("<IHHiIII", raw) == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    assert report.read_pcap(p) == frames


def test_artifacts_and_report(tmp_path):
    s, r = make()
    r.streams[1].delivered = 90
    r.unexpected_frames = {"rx:eth0": [b"\xaa" * 64]}
    r.failures = evaluate(s, r)
    r.status = "failed"
    paths = report.write_artifacts(tmp_path / "art", r)
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["filt.json", "filt.pcapng"]
    doc = json.loads((tmp_path / "art" / "filt.json").read_text())
    assert doc["status"] == "failed" and doc["streams"][1]["delivered"] == 90
    assert doc["pcapng"] == {"file": "filt.pcapng", "sent": 0, "arrived": 0, "unexpected": 1}
    assert doc["artifacts"] == [str(tmp_path / "art" / "filt.pcapng"), str(tmp_path / "art" / "filt.json")]
    assert [(p.interface, p.data, p.comment) for p in report.read_pcapng(tmp_path / "art" / "filt.pcapng")] \
        == [("rx:eth0", b"\xaa" * 64, "unexpected at rx:eth0")]
    out = report.write_report(tmp_path / "r" / "report.json", [r.as_dict()], duration=1.5)
    rep = json.loads(open(out).read())
    assert rep["summary"] == {"passed": 0, "failed": 1, "error": 0, "skipped": 0} and rep["scenarios"][0]["id"] == "filt"
    assert rep["scenarios"][0]["pps"] == 20000.0


def _sampled_result():
    from netring.check import stamp_frame
    from netring_testkit.verdict import SentFrame

    s, r = make()
    t0 = 1_700_000_000_123_456_789
    tmpl, off = runner.build_frame(100, 1, src_mac="02:4e:52:00:00:01", dst_mac="02:4e:52:00:00:02")
    sent = [SentFrame("kept", "tx:eth0", q, t0 + q, stamp_frame(tmpl, 1, q, off)) for q in (0, 1, 99)]
    r.sent_samples = sent
    r.arrived_samples = {"rx:eth0": [(t0 + 1000, sent[0].data), (t0 + 1001, b"\x01" * 60)]}
    r.unexpected_frames = {"rx:eth0": [b"\x01" * 60]}
    r.status = "failed"
    return r, t0


def test_failure_pcapng_holds_sent_arrived_and_unexpected_frames_commented(tmp_path):
    r, t0 = _sampled_result()
    pcap, js = report.write_artifacts(tmp_path, r)
    got = report.read_pcapng(pcap)
    assert [(p.interface, p.comment) for p in got] == [
        ("tx:eth0", "sent stream kept seq 0"), ("tx:eth0", "sent stream kept seq 1"),
        ("tx:eth0", "sent stream kept seq 99"),
        ("rx:eth0", "arrived at rx:eth0 (stream kept seq 0)"), ("rx:eth0", "arrived at rx:eth0"),
        ("rx:eth0", "unexpected at rx:eth0")]
    assert [p.data for p in got[:3]] == [f.data for f in r.sent_samples]
    assert got[3].data == r.sent_samples[0].data and got[3].timestamp_ns == t0 + 1000
    assert got[0].timestamp_ns == t0
    assert len({p.description for p in got}) == 3          # one interface block per endpoint and role
    assert json.loads(open(js).read())["pcapng"] == {"file": pcap.rsplit("/", 1)[1], "sent": 3, "arrived": 2,
                                                     "unexpected": 1}


def test_pcapng_roundtrip_and_layout(tmp_path):
    frames_ = [b"\x01" * 60, b"\x02" * 1514, b"\x03" * 61]
    p = report.write_pcapng(tmp_path / "x.pcapng", [("a:eth0", "sent"), ("b:eth0", None)],
                            [(0, 5, frames_[0], "one"), (1, (1 << 40) + 7, frames_[1], None),
                             (1, 9, frames_[2], "\u00fcber drei")], snaplen=1000)
    raw = open(p, "rb").read()
    assert struct.unpack_from("<IIIHHq", raw) == (0x0A0D0D0A, struct.unpack_from("<I", raw, 4)[0], 0x1A2B3C4D, 1, 0, -1)
    off, types = 0, []
    while off < len(raw):   # every block: 4-byte aligned, its length repeated at its end
        btype, blen = struct.unpack_from("<II", raw, off)
        assert blen % 4 == 0 and struct.unpack_from("<I", raw, off + blen - 4)[0] == blen
        types.append(btype)
        off += blen
    assert off == len(raw) and types == [0x0A0D0D0A, 1, 1, 6, 6, 6]
    got = report.read_pcapng(p)
    assert [(g.interface, g.description, g.timestamp_ns, g.data, g.orig_len, g.comment) for g in got] == [
        ("a:eth0", "sent", 5, frames_[0], 60, "one"),
        ("b:eth0", None, (1 << 40) + 7, frames_[1][:1000], 1514, None),
        ("b:eth0", None, 9, frames_[2], 61, "\u00fcber drei")]
    with pytest.raises(ValueError):
        report.write_pcapng(tmp_path / "y.pcapng", [("a", None)], [(1, 0, b"x", None)])
    (tmp_path / "z.pcapng").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="damaged"):
        report.read_pcapng(tmp_path / "z.pcapng")


def test_tshark_reads_the_failure_pcapng_and_its_comments(tmp_path):
    import shutil
    import subprocess

    if shutil.which("tshark") is None:
        pytest.skip("needs tshark (Debian: apt-get install tshark)")
    r, _ = _sampled_result()
    pcap, _ = report.write_artifacts(tmp_path, r)
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.comment"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [l.split("\t") for l in out.stdout.splitlines()]
    assert rows == [["tx:eth0", "sent stream kept seq 0"], ["tx:eth0", "sent stream kept seq 1"],
                    ["tx:eth0", "sent stream kept seq 99"], ["rx:eth0", "arrived at rx:eth0 (stream kept seq 0)"],
                    ["rx:eth0", "arrived at rx:eth0"], ["rx:eth0", "unexpected at rx:eth0"]]


def test_tcpdump_reads_the_failure_pcapng(tmp_path):
    import shutil
    import subprocess

    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump (Debian: apt-get install tcpdump)")
    r, _ = _sampled_result()
    pcap, _ = report.write_artifacts(tmp_path, r)
    td = subprocess.run(["tcpdump", "-nn", "-r", pcap], capture_output=True, text=True, timeout=60)
    assert td.returncode == 0, td.stderr
    assert td.stdout.count("198.18.255.1.1024 > 198.18.255.2.9: UDP") == 4, td.stdout


def test_safe_name():
    assert report.safe_name("udp[size=64-mode=native]") == "udp_size=64-mode=native_"


# --------------------------------------------------------------------------------------------
# template frames
# --------------------------------------------------------------------------------------------
def _checksums_ok(frame, l3, l4):
    p = frames.parse(frame)
    l4name = "icmpv6" if (l3, l4) == ("ipv6", "icmp") else l4
    return (l3 == "ipv6" or p["ipv4"]["checksum_ok"]) and p[l4name]["checksum_ok"] and p["error"] is None


@settings(max_examples=150, deadline=None)
@given(l3=st.sampled_from(["ipv4", "ipv6"]), l4=st.sampled_from(["udp", "tcp", "icmp"]),
       vlan=st.one_of(st.none(), st.integers(0, 4095)), sid=st.integers(0, 2**16 - 1), data=st.data())
def test_build_frame_is_valid_and_stamped(l3, l4, vlan, sid, data):
    lo = sc.min_frame_size(l3, l4, vlan is not None)
    size = data.draw(st.integers(lo, 1518))
    frame, csum_off = runner.build_frame(size, sid, src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02",
                                         l3=l3, l4=l4, vlan=vlan)
    assert len(frame) == size
    got = stamp.read(frame)
    assert got is not None and got.ok and got.stream_id == sid and got.seq == 0
    assert got.offset == size - stamp.STAMP_LEN
    assert _checksums_ok(frame, l3, l4)
    if l3 == "ipv4":
        assert frames.parse(frame)["ipv4"]["df"]  # the engine's templates carry DF
    assert csum_off == 14 + (4 if vlan is not None else 0) + (20 if l3 == "ipv4" else 40) + \
        {"udp": 6, "tcp": 16, "icmp": 2}[l4]


def test_build_frame_too_small():
    with pytest.raises(ScenarioError, match="frame size 61 B cannot hold ipv4/udp headers and the 20 B stamp "
                                               r"\(minimum 62 B\)"):
        runner.build_frame(61, 0, src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02")
    with pytest.raises(ScenarioError, match="minimum 94 B"):
        runner.build_frame(93, 0, src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02", l3="ipv6", l4="tcp")


def test_report_summary_lists_every_status_with_zeros(tmp_path):
    """A consumer reads summary["error"] without guessing: every status is there, zero or not."""
    rep = json.loads(open(report.write_report(tmp_path / "empty.json", [])).read())
    assert rep["summary"] == {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    recs = [{"id": "a", "status": "error"}, {"id": "b", "status": "passed"}, {"id": "c", "status": "error"}]
    rep = json.loads(open(report.write_report(tmp_path / "two.json", recs)).read())
    assert rep["summary"] == {"passed": 1, "failed": 0, "error": 2, "skipped": 0}
    assert list(rep["summary"]) == list(report.STATUSES)

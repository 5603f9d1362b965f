"""Frame builders: lengths, checksums (checked by the kernel itself), stamps, parsing, errors."""
import socket
import struct

import pytest
from hypothesis import given

from netring import stamp as nstamp
from netring.errors import ConfigurationError
from netring_testkit import frames, strategies


# -- pure ----------------------------------------------------------------------------------------
def test_decode_reads_back_the_headers():
    f = frames.build(ipv4={}, udp={"sport": 1, "dport": 9}, size=64, stamp=(0, 17))
    assert frames.decode(f) == "IPv4 198.18.0.1 > 198.18.0.2 UDP 1 > 9 len 64, stamp s0#17 ok"
    f = frames.build(eth={"vlan": {"vid": 42, "pcp": 5}}, ipv6={"src": "2001:2::a", "dst": "2001:2::b"},
                     tcp={"flags": "SA", "sport": 80, "dport": 1234})
    assert frames.decode(f) == "vlan 42 pcp 5 IPv6 2001:2::a > 2001:2::b TCP 80 > 1234 [SA] len 78"
    f = frames.build(eth={"type": 0x88B5}, payload=b"x" * 46)
    assert frames.decode(f) == "ether 02:4e:52:00:00:01 > 02:4e:52:00:00:02 type 0x88b5 len 60"
    assert frames.decode(b"\x00" * 10) == "len 10, runt frame (10 B)"


def test_bad_checksums_and_corrupt_stamp_show_in_decode():
    f = bytearray(frames.build(ipv4={}, udp={}, size=100, stamp=(3, 4)))
    f[14 + 10] ^= 0xFF          # IPv4 header checksum
    f[60] ^= 0x01               # payload byte: UDP checksum and stamp check both break
    assert frames.decode(f) == "IPv4 198.18.0.1 > 198.18.0.2 bad ip csum UDP 1 > 9 bad udp csum len 100, " \
                               "stamp s3#4 CORRUPT"
    g = frames.build(ipv4={}, tcp={"checksum": 0x1234})
    assert "bad tcp csum" in frames.decode(g)


def test_sizes_lengths_and_stamp_position():
    f = frames.build(ipv4={}, udp={}, size=1514, stamp=(1, 2))
    assert len(f) == 1514
    assert struct.unpack_from("!H", f, 16)[0] == 1500              # IPv4 total length
    assert struct.unpack_from("!H", f, 38)[0] == 1480              # UDP length
    st = nstamp.read(f)
    assert (st.stream_id, st.seq, st.ok, st.offset, st.plen) == (1, 2, True, 1514 - 20, 1480 - 8 - 20)
    # trailer padding: the stamp stays at the end of the L3 packet
    t = frames.build(ipv4={}, udp={}, size=100, stamp=(1, 2), pad="trailer")
    assert len(t) == 100 and nstamp.read(t).offset == 14 + 20 + 8 and t[-38:] == bytes(38)
    assert frames.parse(t)["trailer"] == 100 - 62
    # payload prefix, then pattern fill
    p = frames.build(ipv6={}, udp={}, payload=b"hello", size=120)
    assert p[62:67] == b"hello" and p[67:120] == frames.pattern(53, 5)


def test_minimum_sizes_and_too_small_message():
    assert frames.min_size(ipv4={}, udp={}, stamp=(0, 0)) == 62   # so a 64 B IPv4/UDP frame carries a stamp
    assert frames.min_size(ipv6={}, udp={}, stamp=(0, 0)) == 82
    assert frames.min_size(eth={"vlan": 1}, ipv4={}, tcp={}, stamp=(0, 0)) == 78
    with pytest.raises(ConfigurationError) as ei:
        frames.build(ipv4={}, udp={}, size=61, stamp=(0, 1))
    assert ei.value.field == "size" and "at least 62 B" in str(ei.value) and "20 B stamp" in str(ei.value)
    f = frames.build(ipv4={}, udp={}, size=64, stamp=(65535, 1))
    assert len(f) == 64 and nstamp.read(f) == (65535, 1, 2, True, 44)
    with pytest.raises(ConfigurationError, match="0..65535") as ei:
        frames.build(ipv4={}, udp={}, stamp=(65536, 1))
    assert ei.value.field == "stamp"


@pytest.mark.parametrize("kw, field", [
    (dict(ipv4={}, ipv6={}), "ipv6"),
    (dict(ipv4={}, udp={}, tcp={}), "tcp"),
    (dict(udp={}), "udp"),
    (dict(ipv6={}, icmp={}), "icmp"),
    (dict(ipv4={}, icmpv6={}), "icmpv6"),
    (dict(eth={"dst": "zz:00:00:00:00:00"}), "eth.dst"),
    (dict(ipv4={"src": "2001:2::1"}), "ipv4.src"),
    (dict(ipv4={"ttl": 256}), "ipv4.ttl"),
    (dict(ipv4={}, udp={"dport": -1}), "udp.dport"),
    (dict(ipv4={}, udp={"port": 1}), "udp.port"),
    (dict(ipv4={}, tcp={"flags": "SX"}), "tcp.flags"),
    (dict(eth={"vlan": 5000}), "eth.vlan.vid"),
    (dict(eth={"vlan": [1, 2, 3]}), "eth.vlan"),
    (dict(ipv4={}, stamp=(-1, 0)), "stamp"),
    (dict(ipv4={}, pad="zeros"), "pad"),
    (dict(ipv4={}, payload="text"), "payload"),
    (dict(raw=b"\x00" * 70, size=60), "size"),
])
def test_build_errors_name_the_field(kw, field):
    with pytest.raises(ConfigurationError) as ei:
        frames.build(**kw)
    assert ei.value.field == field
    assert "frame" in str(ei.value)


def test_raw_escape_hatch_and_qinq():
    assert frames.build(raw=b"\xff" * 20, size=60) == b"\xff" * 20 + bytes(40)
    f = frames.build(eth={"vlan": [100, 200]}, ipv4={}, udp={})
    assert f[12:20] == bytes.fromhex("88a8006481000" + "0c8") + b"" and f[20:22] == b"\x08\x00"
    assert [t["vid"] for t in frames.parse(f)["vlan"]] == [100, 200]


def test_l4_checksum_offset():
    assert frames.l4_checksum_offset(frames.build(ipv4={}, udp={})) == 14 + 20 + 6
    assert frames.l4_checksum_offset(frames.build(vlan=7, ipv4={"options": b"\x01"}, tcp={})) == 18 + 24 + 16
    assert frames.l4_checksum_offset(frames.build(ipv6={}, icmpv6={})) == 14 + 40 + 2
    assert frames.l4_checksum_offset(frames.build(ipv4={}, icmp={})) == 14 + 20 + 2
    assert frames.l4_checksum_offset(frames.build(eth={"type": 0x88B5}, payload=bytes(46))) == -1
    assert frames.l4_checksum_offset(frames.build(ipv4={"proto": 253}, payload=bytes(30))) == -1
    frag = bytearray(frames.build(ipv4={}, udp={}))
    frag[14 + 6] = 0x20  # MF set: the L4 header is not whole in this packet
    assert frames.l4_checksum_offset(frag) == -1
    assert frames.l4_checksum_offset(frames.build(ipv4={}, udp={})[:30]) == -1


def test_restamp_keeps_checksum_valid():
    f = frames.build(ipv6={}, tcp={}, size=200, stamp=(1, 1))
    g = frames.restamp(f, 9, 12345)
    p = frames.parse(g)
    assert (p["stamp"].stream_id, p["stamp"].seq, p["stamp"].ok, p["tcp"]["checksum_ok"]) == (9, 12345, True, True)
    assert len(g) == len(f) and g[:14 + 40 + 16] == f[:14 + 40 + 16]
    with pytest.raises(ConfigurationError, match="no stamp"):
        frames.restamp(frames.build(ipv4={}, udp={}), 1, 1)


@given(strategies.frame_specs())
def test_generated_frames_parse_back(spec):
    f = frames.build(**spec)
    p = frames.parse(f)
    assert len(f) == spec["size"] and p["error"] is None
    assert p["eth"]["src"] == spec["eth"]["src"] and p["eth"]["dst"] == spec["eth"]["dst"]
    vlan = spec["eth"].get("vlan")
    assert [t["vid"] for t in p["vlan"]] == ([] if vlan is None else [vlan if isinstance(vlan, int) else vlan["vid"]])
    for l3 in ("ipv4", "ipv6"):
        if l3 in spec:
            assert (p[l3]["src"], p[l3]["dst"]) == (spec[l3]["src"], spec[l3]["dst"])
    if "ipv4" in spec:
        assert p["ipv4"]["checksum_ok"] and p["ipv4"]["length"] == len(f) - 14 - 4 * bool(vlan)
    for l4 in ("udp", "tcp", "icmp", "icmpv6"):
        if l4 in spec:
            assert p[l4]["checksum_ok"]
            at = frames.l4_checksum_offset(f)
            assert at > 0
            zeroed = bytearray(f)
            zeroed[at:at + 2] = b"\0\0"
            assert frames.parse(zeroed)[l4]["checksum_ok"] is (l4 == "udp" and "ipv4" in spec)
    if "stamp" in spec:
        st = p["stamp"]
        assert (st.stream_id, st.seq, st.ok) == (spec["stamp"][0], spec["stamp"][1], True)
    assert isinstance(frames.decode(f), str)


@given(strategies.frame_specs(mtu=1500, vlan=False, stamp=True, l4=("udp", "tcp")))
def test_restamp_matches_a_fresh_build(spec):
    f = frames.build(**spec)
    spec2 = dict(spec, stamp=(7, 8))
    assert frames.restamp(f, 7, 8) == frames.build(**spec2)


# -- the kernel checks our checksums ---------------------------------------------------------------
def _to_b(a, b, **layers):
    eth = {"src": a.mac, "dst": b.mac}
    eth.update(layers.pop("eth", {}))
    return frames.build(eth=eth, **layers)


@pytest.mark.privileged
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_udp_frames_are_accepted_by_the_receiving_stack(veth_pair, family):
    a, b = veth_pair
    fam = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    src, dst = (a.ipv4, b.ipv4) if family == "ipv4" else (a.ipv6, b.ipv6)
    with b.netns.socket(fam, socket.SOCK_DGRAM, 0) as r:
        r.bind(("", 9))
        r.settimeout(5)
        tx = a.packet_socket()
        good = _to_b(a, b, **{family: {"src": src, "dst": dst}}, udp={"sport": 7, "dport": 9}, size=300,
                     stamp=(5, 6))
        bad = bytearray(good)
        bad[-30] ^= 0xFF
        tx.send(bytes(bad))   # corrupted payload: the UDP checksum no longer matches, the stack drops it
        tx.send(good)
        data, addr = r.recvfrom(2000)
        assert addr[0] == src and addr[1] == 7
        assert data == good[len(good) - len(data):] and len(data) == 300 - 14 - (20 if fam == socket.AF_INET else 40) - 8
        r.settimeout(0.2)
        with pytest.raises(socket.timeout):
            r.recvfrom(2000)


def _recv_reply(sock, want, limit=20):
    for _ in range(limit):
        data, addr = sock.recvfrom(4096)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        p = frames.parse(data)
        if want(p):
            return p
    raise AssertionError("no matching reply")


@pytest.mark.privileged
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_tcp_syn_gets_syn_ack(veth_pair, family):
    a, b = veth_pair
    fam = socket.AF_INET if family == "ipv4" else socket.AF_INET6
    src, dst = (a.ipv4, b.ipv4) if family == "ipv4" else (a.ipv6, b.ipv6)
    with b.netns.socket(fam, socket.SOCK_STREAM, 0) as srv:
        srv.bind(("", 8080))
        srv.listen(1)
        rx = a.packet_socket(timeout=5)
        tx = a.packet_socket()
        l3 = {family: {"src": src, "dst": dst}}
        tx.send(_to_b(a, b, **l3, tcp={"sport": 40001, "dport": 8080, "flags": "S", "seq": 5, "checksum": 1}))
        tx.send(_to_b(a, b, **l3, tcp={"sport": 40000, "dport": 8080, "flags": "S", "seq": 1000}))
        p = _recv_reply(rx, lambda p: "tcp" in p)
    # The first SYN (wrong checksum) was dropped by b's stack: the only answer is to the second.
    # (The reply's own checksum is left to offload — CHECKSUM_PARTIAL over veth — so not checked.)
    assert (p["tcp"]["flags"], p["tcp"]["ack"], p["tcp"]["dport"]) == ("SA", 1001, 40000)
    assert p[family]["src"] == dst and p[family]["dst"] == src


@pytest.mark.privileged
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_icmp_echo_gets_reply(veth_pair, family):
    a, b = veth_pair
    l4 = "icmp" if family == "ipv4" else "icmpv6"
    src, dst = (a.ipv4, b.ipv4) if family == "ipv4" else (a.ipv6, b.ipv6)
    rx = a.packet_socket(timeout=5)
    a.packet_socket().send(_to_b(a, b, **{family: {"src": src, "dst": dst}},
                                 **{l4: {"id": 77, "seq": 3}}, payload=b"ping!" * 8))
    p = _recv_reply(rx, lambda p: l4 in p and p[l4]["type"] in (0, 129))
    assert (p[l4]["id"], p[l4]["seq"], p[l4]["checksum_ok"]) == (77, 3, True)


# -- size limits: checked up front, padding in O(n) ------------------------------------------------
@pytest.mark.parametrize("size", [10**6, 10**8, 2**64, frames.MAX_FRAME + 1])
@pytest.mark.parametrize("layers", [dict(ipv4={}, udp={}), dict(ipv6={}, tcp={}), dict(raw=b"\xff" * 60), {}])
def test_oversize_frames_are_a_configuration_error_at_once(size, layers):
    """Was: struct.error for 10**6 (UDP length packed before its check), 57 s for 10**8 and no return for
    2**64 (quadratic padding). Now a ConfigurationError naming the limit, before any padding is built."""
    import time

    t = time.monotonic()
    with pytest.raises(ConfigurationError, match="exceeds the largest Ethernet frame anything here can send, "
                                                 "65553 B") as ei:
        frames.build(size=size, **layers)
    assert time.monotonic() - t < 0.5
    assert ei.value.field == "size" and ei.value.value == size


@pytest.mark.parametrize("layers, match", [
    (dict(ipv4={}, udp={}), "too large for an IPv4 packet"),   # untagged: 65539 B of IPv4
])
def test_sizes_under_max_frame_that_overflow_a_length_field_are_configuration_errors(layers, match):
    # (IPv6 fits: 65553 - 14 - 40 B of payload is under its 16-bit payload length)
    with pytest.raises(ConfigurationError, match=match) as ei:
        frames.build(size=frames.MAX_FRAME, **layers)
    assert ei.value.field == "size"


def test_largest_frames_build_quickly_and_pattern_is_linear():
    import time

    t = time.monotonic()
    f = frames.build(eth={"vlan": 1}, ipv4={}, tcp={}, size=frames.MAX_FRAME, stamp=(1, 2))
    assert len(f) == frames.MAX_FRAME and frames.parse(f)["error"] is None
    assert frames.parse(f)["ipv4"]["length"] == 65535
    assert frames.pattern(65000, 3) == bytes((3 + i) & 0xFF for i in range(65000))  # pattern of the longest
    assert time.monotonic() - t < 1.0
    with pytest.raises(ConfigurationError, match="MAX_FRAME"):
        frames.pattern(2**64)
    with pytest.raises(ConfigurationError, match="use a shorter payload") as ei:
        frames.build(ipv4={}, udp={}, payload=bytes(frames.MAX_FRAME))
    assert ei.value.field == "payload"

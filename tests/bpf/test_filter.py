"""The ``filter`` built-in: rule validation, semantics checked against a Python reference, traffic."""
import ipaddress
import struct

import pytest

from netring_testkit.plugin import require
from hypothesis import HealthCheck, given, settings, strategies as st

from netring import xdp
from netring.bpf import builtin
from netring.bpf.programs import ACTIONS, validate_rules
from netring.errors import ConfigurationError
from netring import stamp

import frames_util as fu

pytestmark = pytest.mark.privileged


# -- a reference matcher, written independently of the BPF code ------------------------
def parse(f):
    d = {}
    et = struct.unpack_from("!H", f, 12)[0]
    l3 = 14
    if et in (0x8100, 0x88A8):
        d["vlan"] = struct.unpack_from("!H", f, 14)[0] & 0xFFF
        et = struct.unpack_from("!H", f, 16)[0]
        l3 = 18
    d["type"] = et
    st_ = stamp.read(f)
    if et == 0x0800:
        d["proto"] = f[l3 + 9]
        d["src"] = ipaddress.IPv4Address(f[l3 + 12:l3 + 16])
        d["dst"] = ipaddress.IPv4Address(f[l3 + 16:l3 + 20])
        l4 = l3 + (f[l3] & 15) * 4
    elif et == 0x86DD:
        d["proto"] = f[l3 + 6]
        d["src"] = ipaddress.IPv6Address(f[l3 + 8:l3 + 24])
        d["dst"] = ipaddress.IPv6Address(f[l3 + 24:l3 + 40])
        l4 = l3 + 40
    else:
        return d
    if st_ is not None:
        d["stream"] = st_.stream_id
    if d["proto"] in (6, 17):
        d["sport"], d["dport"] = struct.unpack_from("!HH", f, l4)
    return d


def ref_match(rule_match, d):
    eth = rule_match.get("eth", {})
    if "type" in eth and d.get("type") != eth["type"]:
        return False
    if "vlan" in eth and d.get("vlan") != eth["vlan"]:
        return False
    for fam, et in (("ipv4", 0x0800), ("ipv6", 0x86DD)):
        if fam in rule_match:
            if d.get("type") != et:
                return False
            ip = rule_match[fam]
            for side in ("src", "dst"):
                if side in ip and d[side] not in ipaddress.ip_network(ip[side], strict=False):
                    return False
            if "proto" in ip and d["proto"] != {"udp": 17, "tcp": 6, "icmp": 1}.get(ip["proto"], ip["proto"]):
                return False
    for l4, num in (("udp", 17), ("tcp", 6)):
        if l4 in rule_match:
            if d.get("proto") != num or "sport" not in d:
                return False
            for side in ("sport", "dport"):
                if side in rule_match[l4] and d[side] != rule_match[l4][side]:
                    return False
    if "stream" in rule_match and d.get("stream") != rule_match["stream"]:
        return False
    return True


def ref_verdict(rules, default, f):
    d = parse(f)
    for i, r in enumerate(rules):
        if ref_match(r["match"], d):
            return r["action"], i
    return default, None


# -- strategies -------------------------------------------------------------------------
V4 = ["198.18.0.1", "198.18.0.2", "198.19.255.1", "198.18.7.9"]
V6 = ["2001:2::1", "2001:2::2", "2001:2:0:1::5", "2001:2::ff00:1"]

frames = st.builds(
    lambda l3, proto, si, di, sport, dport, vlan, stream: fu.frame(
        stream=stream, seq=1, l3=l3, proto=proto,
        src=(V4 if l3 == "ipv4" else V6)[si] if l3 != "raw" else None,
        dst=(V4 if l3 == "ipv4" else V6)[di] if l3 != "raw" else None,
        sport=sport, dport=dport, vlan=vlan),
    st.sampled_from(["ipv4", "ipv6", "raw"]), st.sampled_from(["udp", "tcp", "icmp"]),
    st.integers(0, 3), st.integers(0, 3), st.sampled_from([9, 4000, 53]), st.sampled_from([9, 4000, 53]),
    st.sampled_from([None, 42, 7]), st.sampled_from([1, 2, 0xFFF0, 0xFFFF]))


@st.composite
def matches(draw):
    m = {}
    fam = draw(st.sampled_from([None, "ipv4", "ipv6"]))
    if fam:
        pool = V4 if fam == "ipv4" else V6
        ip = {}
        for side in ("src", "dst"):
            if draw(st.booleans()):
                addr = draw(st.sampled_from(pool))
                plen = draw(st.sampled_from([None, 8, 15, 16, 24, 31] if fam == "ipv4" else [None, 32, 48, 64, 112, 127]))
                ip[side] = addr if plen is None else "%s/%d" % (addr, plen)
        if draw(st.booleans()):
            ip["proto"] = draw(st.sampled_from(["udp", "tcp", 1]))
        m[fam] = ip
    if draw(st.booleans()) and not (fam and m[fam].get("proto") not in (None, "udp", "tcp")):
        proto = m.get(fam, {}).get("proto") if fam else None
        l4 = proto if proto in ("udp", "tcp") else draw(st.sampled_from(["udp", "tcp"]))
        m[l4] = {k: draw(st.sampled_from([9, 4000, 53])) for k in ("sport", "dport") if draw(st.booleans())}
    if draw(st.booleans()):
        m["eth"] = {"vlan": draw(st.sampled_from([42, 7]))}
    if draw(st.booleans()):
        m["stream"] = draw(st.sampled_from([1, 2, 0xFFF0, 0xFFFF]))
    return m


rules_st = st.lists(st.builds(lambda m, a: {"match": m, "action": a}, matches(),
                              st.sampled_from(["drop", "pass", "aborted", "tx"])), min_size=1, max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rules_st, default=st.sampled_from(["pass", "drop"]), fs=st.lists(frames, min_size=1, max_size=24))
def test_filter_agrees_with_reference(rules, default, fs):
    """Verdict and per-rule counts of the compiled program equal a pure-Python evaluation of the rules."""
    require("CAP_BPF")
    with builtin("filter", rules=rules, default=default) as prog:
        want_rules = [0] * len(rules)
        want_actions = dict.fromkeys(ACTIONS, 0)
        for f in fs:
            action, idx = ref_verdict(rules, default, f)
            ret, out = prog.test_run(f)
            assert ret == ACTIONS[action], (rules, parse(f))
            if action == "tx":
                assert out == f[6:12] + f[:6] + f[12:]
            want_actions[action] += 1
            if idx is not None:
                want_rules[idx] += 1
        c = prog.counters()
    assert [r["packets"] for r in c["rules"]] == want_rules
    assert {k: c[k]["packets"] for k in ACTIONS} == want_actions


@pytest.mark.parametrize("rules, field", [
    ([{"match": {"ipv4": {"src": "10.0.0.300"}}, "action": "drop"}], "rules[0].match.ipv4.src"),
    ([{"match": {}, "action": "pass"}, {"match": {"udp": {"dport": 70000}}, "action": "drop"}], "rules[1].match.udp.dport"),
    ([{"match": {"ipv6": {"dst": "198.18.0.1"}}, "action": "drop"}], "rules[0].match.ipv6.dst"),
    ([{"match": {"eth": {"vlan": 5000}}, "action": "drop"}], "rules[0].match.eth.vlan"),
    ([{"match": {"stream": -1}, "action": "drop"}], "rules[0].match.stream"),
    ([{"match": {}, "action": "pass"}, {"match": {"stream": 65536}, "action": "drop"}], "rules[1].match.stream"),
    ([{"match": {"ipv4": {}, "ipv6": {}}, "action": "drop"}], "rules[0].match.ipv6"),
    ([{"match": {"ipv4": {"proto": "tcp"}, "udp": {}}, "action": "drop"}], "rules[0].match.udp"),
    ([{"match": {"mpls": 1}, "action": "drop"}], "rules[0].match.mpls"),
    ([{"match": {}, "action": "redirect"}], "rules[0].action"),
    ([{"match": {}}], "rules[0].action"),
])
def test_rule_validation_names_index_and_field(rules, field):
    with pytest.raises(ConfigurationError) as ei:
        validate_rules(rules)
    assert ei.value.field == field
    assert "rule %s" % field.split("[")[1].split("]")[0] in str(ei.value)


def test_bad_default_and_too_many_rules():
    with pytest.raises(ConfigurationError, match="default"):
        validate_rules([], default="redirect")
    with pytest.raises(ConfigurationError, match="at most 64"):
        validate_rules([{"match": {}, "action": "drop"}] * 65)


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_filter_drops_exactly_the_matching_stream(pair, mode):
    a, b = pair
    rules = [{"match": {"stream": 2}, "action": "drop"},
             {"match": {"ipv4": {"dst": "198.19.0.0/16"}, "udp": {"dport": 53}}, "action": "drop"},
             {"match": {"eth": {"vlan": 42}}, "action": "pass"}]
    counts = {1: 120, 2: 80, 3: 50, 4: 30}
    frames = []
    for s, n in counts.items():
        for i in range(n):
            kw = {"dport": 53} if s == 3 else {}
            kw = {"vlan": 42} if s == 4 else kw
            frames.append(fu.frame(stream=s, seq=i, **kw))
    with builtin("filter", rules=rules, default="pass") as prog, \
            xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        with fu.receiver(b.netns, b.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
            fu.send(tx, frames)
            got = fu.receive(rx, count=counts[1] + counts[4], timeout=0.5)
        c = att.counters()
    streams = sorted({stamp.read(f).stream_id for f in got})
    assert streams == [1, 4]
    assert len(got) == counts[1] + counts[4]
    assert [r["packets"] for r in c["rules"]] == [80, 50, 30]
    assert c["drop"]["packets"] == 130 and c["pass"]["packets"] == 150
    assert c["rules"][0]["bytes"] == sum(len(f) for f in frames if stamp.read(f).stream_id == 2)


@pytest.mark.parametrize("match, hit, miss", [
    ({"eth": {"type": 0x86DD}}, dict(l3="ipv6"), dict()),
    ({"eth": {"vlan": 42}}, dict(vlan=42), dict(vlan=7)),
    ({"ipv4": {"src": "198.18.0.1"}}, dict(), dict(src="198.18.0.2")),
    ({"ipv4": {"dst": "198.19.0.0/16"}}, dict(dst="198.19.3.4"), dict(dst="198.18.3.4")),
    ({"ipv4": {"proto": "tcp"}}, dict(proto="tcp"), dict()),
    ({"ipv6": {"src": "2001:2::/64"}}, dict(l3="ipv6", src="2001:2::9"), dict(l3="ipv6", src="2001:2:0:1::9")),
    ({"ipv6": {"dst": "2001:2::2"}}, dict(l3="ipv6"), dict(l3="ipv6", dst="2001:2::3")),
    ({"udp": {"sport": 4000}}, dict(), dict(sport=4001)),
    ({"udp": {"dport": 9}}, dict(l3="ipv6"), dict(proto="tcp")),
    ({"tcp": {"dport": 53}}, dict(proto="tcp", dport=53), dict(dport=53)),
    ({"stream": 0xFFF0}, dict(stream=0xFFF0), dict(stream=0x7FF0)),
    ({"stream": 0xFFFF}, dict(stream=0xFFFF, payload=0), dict(stream=0xFFFE, payload=0)),
    ({"stream": 0}, dict(stream=0, l3="ipv6", proto="icmp", payload=0), dict(stream=1, l3="ipv6", payload=0)),
    ({"stream": 3}, dict(l3="ipv6", stream=3), dict(l3="raw", stream=3)),
    ({"ipv4": {"src": "198.18.0.0/15"}, "udp": {"dport": 9}, "stream": 1}, dict(vlan=7), dict(dport=10)),
])
def test_each_match_field(match, hit, miss):
    """One rule per field: a frame that matches is dropped and counted, one that does not passes."""
    require("CAP_BPF")
    with builtin("filter", rules=[{"match": match, "action": "drop"}]) as prog:
        assert prog.test_run(fu.frame(**hit))[0] == ACTIONS["drop"]
        assert prog.test_run(fu.frame(**miss))[0] == ACTIONS["pass"]
        assert prog.counters()["rules"][0]["packets"] == 1

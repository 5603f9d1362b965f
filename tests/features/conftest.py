"""Fixtures of the capability-check and DUT-mode tests: a veth pair an operator would make.

``operator_pair`` creates two *named* namespaces with ``ip netns add`` (``nrtest-<pid>-<n>-dut`` and
``…-peer``, the way a person sets up a lab) joined by a veth ``dut0`` <-> ``peer0``, both up, and
deletes them in a ``finally``. The toolkit never created these, so everything it does to them must
be undone by it.
"""
import itertools
import os
import subprocess

import ctypes
import fcntl
import socket
import struct

import pytest

from netring.netns import NetNS

_serial = itertools.count(1)


def ip(*args, check=True):
    """Run ``ip ARGS``; return its stdout (raises with stderr on failure when ``check``)."""
    out = subprocess.run(("ip",) + args, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise AssertionError("ip %s failed: %s" % (" ".join(args), out.stderr.strip()))
    return out.stdout


def _gro_here(ifname):
    """ETHTOOL_GGRO of ``ifname`` in the calling thread's namespace (what `ethtool -k` shows)."""
    buf = ctypes.create_string_buffer(struct.pack("II", 0x2B, 0), 8)
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, 0x8946, ifr)
    return struct.unpack("II", buf.raw)[1]


def set_gro(netns, ifname, on):
    """ETHTOOL_SGRO on ``ifname`` in the named namespace ``netns`` (what `ethtool -K IF gro on` does)."""
    def here():
        buf = ctypes.create_string_buffer(struct.pack("II", 0x2C, 1 if on else 0), 8)
        ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf)).ljust(40, b"\0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, 0x8946, ifr)

    with NetNS.open(netns) as ns:
        ns.run(here)


class OperatorPair:
    """The two namespaces and interfaces: ``dut_ns``/``peer_ns`` names, ``dut``/``peer`` interface names."""

    def __init__(self, tag):
        self.dut_ns = "nrtest-%d-%d-dut" % (os.getpid(), tag)
        self.peer_ns = "nrtest-%d-%d-peer" % (os.getpid(), tag)
        self.dut, self.peer = "dut0", "peer0"

    def create(self):
        ip("netns", "add", self.dut_ns)
        ip("netns", "add", self.peer_ns)
        ip("-n", self.dut_ns, "link", "add", self.dut, "type", "veth", "peer", "name", self.peer,
           "netns", self.peer_ns)
        # A quiet lab link, as the README advises for exact counts: no link-local address on these two
        # (so no DAD, router solicitations or MLD reports of a freshly-up link landing in a scenario's counters).
        for ns, ifname in ((self.dut_ns, self.dut), (self.peer_ns, self.peer)):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                            "net.ipv6.conf.%s.addr_gen_mode=1" % ifname], check=True, timeout=30)
            ip("-n", ns, "link", "set", ifname, "up")

    def delete(self):
        for ns in (self.dut_ns, self.peer_ns):
            ip("netns", "del", ns, check=False)

    def state(self):
        """What an operator would check: per side, the ``ip -d link`` line facts, the addresses, the
        interfaces in the namespace and the sysctls the toolkit may touch."""
        out = {}
        for ns, ifname in ((self.dut_ns, self.dut), (self.peer_ns, self.peer)):
            link = ip("-n", ns, "-o", "link", "show", "dev", ifname)
            addrs = sorted(line.split()[3] for line in ip("-n", ns, "-o", "addr", "show", "dev", ifname).splitlines())
            names = sorted(line.split()[1] for line in ip("-n", ns, "-o", "link").splitlines())
            sysctls = subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.icmp_echo_ignore_all",
                 "net.ipv4.icmp_msgs_per_sec", "net.ipv6.conf.%s.force_mld_version" % ifname,
                 "net.ipv6.conf.%s.mldv2_unsolicited_report_interval" % ifname],
                capture_output=True, text=True, timeout=30).stdout.split()
            with NetNS.open(ns) as handle:
                gro = handle.run(_gro_here, ifname)
            out[ifname] = {"link": " ".join(link.split(":", 1)[1].split()), "addresses": addrs,
                           "names": names, "sysctls": sysctls, "gro": gro, "xdp": "prog/xdp" in link or any(w.startswith("xdp") for w in link.split())}
        return out


@pytest.fixture
def operator_pair():
    """An :class:`OperatorPair`, created for the test and deleted after it (also on failure)."""
    pair = OperatorPair(next(_serial))
    try:
        pair.create()
        yield pair
    finally:
        pair.delete()

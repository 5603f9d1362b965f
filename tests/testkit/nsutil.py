"""Helpers for the plugin's own tests: who still references a namespace, what the root namespace holds."""
import os


def net_ns_holders(inodes):
    """Paths under /proc (ns links and fds) and /run/netns that still refer to namespaces ``inodes``."""
    want = {"net:[%d]" % i for i in inodes}
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for path in ["/proc/%s/ns/net" % pid] + _fds(pid):
            try:
                if os.readlink(path) in want:
                    hits.append(path)
            except OSError:
                pass
    try:
        for name in os.listdir("/run/netns"):
            try:
                if os.stat(os.path.join("/run/netns", name)).st_ino in inodes:
                    hits.append("/run/netns/" + name)
            except OSError:
                pass
    except OSError:
        pass
    return hits


def _fds(pid):
    try:
        return ["/proc/%s/fd/%s" % (pid, fd) for fd in os.listdir("/proc/%s/fd" % pid)]
    except OSError:
        return []


def root_link_names():
    """Interface names in this process's (root) namespace, via rtnetlink."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}

"""``netring-testkit``: command-line helpers for YAML scenarios and driver XDP capability checks.

``netring-testkit validate PATH...``
    Check scenario files against the schema and the semantic rules; print every problem as
    ``FILE:LINE:COL: FIELD.PATH: message`` and exit 1 when there is any (2 for usage errors).
    A FILE named here is checked whatever it contains (like a file named on the pytest
    command line); a directory is searched for scenario files by the collection rule.
``netring-testkit list [PATHS...]``
    List the scenarios (one line per pytest item id) found under PATHS (default: ``scenarios``
    if it exists, else ``.``); invalid files are reported like ``validate`` does. Files named
    directly count whatever they contain; directories hold only files whose top level is
    ``scenarios:`` plus ``x-*`` keys — the same collection rule as pytest (README, "YAML scenarios").
``netring-testkit schema``
    Print the path of the published JSON Schema (for editors).
``netring-testkit xdp-features IFACE [--netns NS] [--peer IFACE [--peer-netns NS]] [--mode native|generic] [--expect F,...] [--json FILE] [--junitxml FILE]``
    Compare the XDP features ``IFACE`` advertises with what it does, with frames from its peer
    (:mod:`netring_testkit.xdpfeatures`): a table on stdout, progress on stderr; exit 0 when
    nothing mismatches, 1 on a mismatch, 2 when the check could not run, 130 on Ctrl-C (after
    restoring the interfaces).

``validate`` and ``list`` take ``--netring-limits "NAME=N ..."`` (the same as pytest's option) to
raise the limits on scenario files.

Running scenarios is pytest's job: ``pytest -p netring_testkit scenarios/``.
"""
import argparse
import json
import os
import signal
import sys

from . import scenario as _scenario
from .scenario.limits import LIMITS_HELP, Limits

__all__ = ["main"]


def _validate(args, out):
    bad = 0
    total = 0
    files = []
    for path in args.files:
        if os.path.isdir(path):
            found = _scenario.find_scenario_files([path], limits=args.limits)
            if not found:
                out.write("%s: no scenario files in this directory\n" % path)
            files.extend(found)
        else:
            files.append(path)
    for path in files:
        if not os.path.exists(path):
            out.write("%s: no such file\n" % path)
            bad += 1
            continue
        try:
            items = _scenario.load(path, limits=args.limits)
        except _scenario.ScenarioSpecError as exc:
            for p in exc.problems:
                out.write("%s\n" % p)
            bad += 1
            continue
        total += len(items)
        if not args.quiet:
            out.write("%s: ok (%d scenario item%s)\n" % (path, len(items), "" if len(items) == 1 else "s"))
    if bad:
        out.write("%d of %d file%s invalid\n" % (bad, len(files), "" if len(files) == 1 else "s"))
        return 1
    return 0


def _list(args, out):
    paths = args.paths or (["scenarios"] if os.path.isdir("scenarios") else ["."])
    missing = [p for p in paths if not os.path.exists(p)]
    for p in missing:
        out.write("%s: no such file or directory\n" % p)
    files = _scenario.find_scenario_files([p for p in paths if os.path.exists(p)], limits=args.limits)
    bad = bool(missing)
    count = 0
    for path in files:
        try:
            items = _scenario.load(path, limits=args.limits)
        except _scenario.ScenarioSpecError as exc:
            for p in exc.problems:
                out.write("%s\n" % p)
            bad = True
            continue
        for sc in items:
            count += 1
            line = "%s::%s" % (path, sc.id)
            if args.verbose:
                line += "  (%d stream%s, %d frames%s%s)" % (
                    len(sc.streams), "" if len(sc.streams) == 1 else "s", sc.total_frames,
                    ", xdp " + "+".join(str(x.program if x.builtin else x.program["program"]) for x in sc.xdp)
                    if sc.xdp else "", ", markers " + ",".join(sc.markers) if sc.markers else "")
            out.write(line + "\n")
    out.write("%d scenario item%s in %d file%s\n" % (count, "" if count == 1 else "s", len(files),
                                                     "" if len(files) == 1 else "s"))
    return 1 if bad else 0


def _xdp_features(args, out):
    from netring.errors import NetringError

    from . import caps, xdpfeatures

    err = sys.stderr
    try:
        expect = xdpfeatures.parse_expect(args.expect)
    except xdpfeatures.CheckError as exc:
        err.write("xdp-features: %s\n" % exc)
        return 2
    # Before the check (it takes a while and changes the device): a report that cannot be written is
    # "could not run" (2) now, not a traceback after it.
    for option, path in (("--json", args.json), ("--junitxml", args.junitxml)):
        problem = path and _unwritable(path)
        if problem:
            err.write("xdp-features: cannot write %s %s: %s\n" % (option, path, problem))
            return 2

    def fail(message):
        err.write("xdp-features: the check could not run: %s\n" % message)
        if args.junitxml:
            _write_report(err, "--junitxml", args.junitxml,
                          xdpfeatures.junit_xml({"interface": args.iface}, error=message))
        return 2

    reason = caps.skip_reason(caps.NEEDED + ("CAP_BPF",))
    if reason:
        return fail(reason)

    def interrupted(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the restoring short
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, interrupted)
    try:
        report = xdpfeatures.check(args.iface, netns=args.netns, peer=args.peer, peer_netns=args.peer_netns,
                                   mode=args.mode, expect=expect,
                                   progress=lambda text: (err.write("xdp-features: %s\n" % text), err.flush()))
    except KeyboardInterrupt:
        err.write("xdp-features: interrupted; programs detached and MTUs restored\n")
        return 130
    except NetringError as exc:
        return fail(str(exc))
    finally:
        signal.signal(signal.SIGINT, old)
    out.write(report.table())
    written = True
    if args.json:
        written &= _write_report(err, "--json", args.json, json.dumps(report.data, indent=2) + "\n")
    if args.junitxml:
        written &= _write_report(err, "--junitxml", args.junitxml, report.junit())
    return report.exit_status if written else 2


def _unwritable(path):
    """Why a report cannot be written to ``path`` (its directory missing, not a directory, not writable;
    ``path`` a directory), or None."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return "directory %s does not exist" % parent
    if os.path.isdir(path):
        return "it is a directory"
    if not os.access(parent, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "permission denied"
    return None


def _write_report(err, option, path, text):
    """Write one report file; on OSError a one-line message naming the path on ``err`` and False."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        err.write("xdp-features: cannot write %s %s: %s\n" % (option, path, exc.strerror or exc))
        return False
    return True


def _limits_option(parser):
    def parse(text):
        try:
            return Limits.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument("--netring-limits", dest="limits", metavar="NAME=N ...", type=parse, default=None,
                        help="raise " + LIMITS_HELP + " (as pytest's --netring-limits)")


def main(argv=None, out=None):
    """Entry point of the ``netring-testkit`` console script; returns the exit status."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="netring-testkit", description="netring YAML scenario tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("validate", help="check scenario files (a FILE whatever it holds, a directory by the "
                                        "collection rule); print located problems; exit 1 if any")
    p.add_argument("files", nargs="+", metavar="PATH")
    _limits_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p = sub.add_parser("list", help="list the scenario items (pytest ids) under PATHS")
    p.add_argument("paths", nargs="*", metavar="PATH")
    _limits_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="show streams, frame counts, XDP programs")
    sub.add_parser("schema", help="print the path of the JSON Schema for scenario files")
    p = sub.add_parser("xdp-features", help="compare the XDP features a device advertises with what it does; "
                                            "exit 0 consistent, 1 mismatch, 2 could not run")
    p.add_argument("iface", metavar="IFACE", help="the device under test")
    p.add_argument("--netns", metavar="NS", default=None, help="namespace of IFACE (default: the current one)")
    p.add_argument("--peer", metavar="IFACE", default=None,
                   help="the interface cabled to IFACE that sends the frames (default: IFACE's other end if it "
                        "is a veth this process can reach)")
    p.add_argument("--peer-netns", metavar="NS", default=None, help="namespace of --peer (default: the current one)")
    p.add_argument("--mode", choices=("native", "generic"), default="native",
                   help="XDP mode of the programs attached to IFACE (default: native)")
    p.add_argument("--expect", metavar="FEATURE,...", default="",
                   help="features IFACE must have (a datasheet's claim): one not observed is a mismatch")
    p.add_argument("--json", metavar="FILE", default=None, help="write the result as JSON to FILE")
    p.add_argument("--junitxml", metavar="FILE", default=None, help="write JUnit XML (one testcase per feature)")
    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate(args, out)
    if args.command == "list":
        return _list(args, out)
    if args.command == "xdp-features":
        return _xdp_features(args, out)
    if args.command == "schema":
        out.write(_scenario.SCHEMA_PATH + "\n")
        return 0
    parser.print_help(out)
    return 2


if __name__ == "__main__":
    sys.exit(main())

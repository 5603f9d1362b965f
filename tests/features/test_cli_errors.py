"""``netring-testkit xdp-features`` and ``ci/xdp-features`` when they cannot run: a report path that
cannot be written, an unknown ``--expect`` feature, a failing ``ci/setup`` — exit status 2 ("could
not run") with a one-line message, decided before the check touches any device."""
import os
import shutil
import subprocess

import pytest

from netring_testkit import cli, xdpfeatures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NO_IFACE = "nr-none0"  # no such interface: had the check started, it would have failed on it


@pytest.mark.parametrize("option", ["--junitxml", "--json"])
def test_a_report_in_a_missing_directory_is_refused_before_the_check(option, tmp_path, capsys):
    path = str(tmp_path / "nonexistent" / "dir" / "x.xml")
    assert cli.main(["xdp-features", NO_IFACE, option, path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("xdp-features: cannot write %s %s: directory " % (option, path)), err
    assert "does not exist" in err and not os.path.exists(os.path.dirname(path))


def test_a_report_path_that_is_a_directory_is_refused(tmp_path, capsys):
    assert cli.main(["xdp-features", NO_IFACE, "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "xdp-features: cannot write --json %s: it is a directory\n" % tmp_path


def test_an_unknown_expected_feature_is_a_check_error_naming_the_valid_ones(capsys):
    with pytest.raises(xdpfeatures.CheckError, match="unknown XDP feature 'bogus'.*basic, redirect, ndo-xmit"):
        xdpfeatures.check(NO_IFACE, expect=["bogus"])
    with pytest.raises(xdpfeatures.CheckError, match="feature names"):
        xdpfeatures.check(NO_IFACE, expect=[5])
    assert xdpfeatures.parse_expect(["basic", " rx-sg"]) == ("basic", "rx-sg")
    assert cli.main(["xdp-features", NO_IFACE, "--expect", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xdp-features: unknown XDP feature 'bogus'") and err.count("\n") == 1


def test_ci_script_exits_2_when_setup_fails(tmp_path):
    (tmp_path / "ci").mkdir()
    shutil.copy(os.path.join(ROOT, "ci", "xdp-features"), tmp_path / "ci" / "xdp-features")
    setup = tmp_path / "ci" / "setup"
    setup.write_text("#!/usr/bin/env bash\necho 'setup: pip exploded' >&2\nexit 1\n")
    setup.chmod(0o755)
    out = subprocess.run([str(tmp_path / "ci" / "xdp-features"), NO_IFACE], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, NETRING_VENV=str(tmp_path / "no-venv")))
    assert out.returncode == 2, out.stderr  # 1 would read as "a feature mismatches"
    assert "ci/setup failed" in out.stderr and "pip exploded" in out.stderr
    assert not (tmp_path / "reports").exists()  # nothing ran after the failed set-up

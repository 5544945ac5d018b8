"""The package step of the bootstrap, with a stand-in apt-get on PATH: it succeeds whether or
not the machine already had a policy-rc.d (Debian container images do), leaves a pre-existing
one alone and removes its own, and shows apt's own words when apt fails."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "apps" / "platform" / "apt-install.sh"


def _run(tmp_path: Path, apt_exit: int, policy_exists: bool) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "apt-get"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        f'[ "$1" = install ] && [ {apt_exit} -ne 0 ] && '
        'echo "E: Unable to locate package nosuch-pkg" >&2 && exit 100\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    policy = tmp_path / "policy-rc.d"
    if policy_exists:
        policy.write_text("#!/bin/sh\nexit 0\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CHANGZHI_POLICY_RC_D": str(policy),
        "CHANGZHI_CREATECLUSTER_CONF": str(tmp_path / "pg" / "createcluster.conf"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "postgresql-15", "nosuch-pkg"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("policy_exists", [True, False])
def test_a_successful_install_succeeds(tmp_path: Path, policy_exists: bool) -> None:
    done = _run(tmp_path, apt_exit=0, policy_exists=policy_exists)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1] == "install -y -qq --no-install-recommends postgresql-15 nosuch-pkg"
    # A policy-rc.d that was there stays; the one made for the install is gone.
    assert (tmp_path / "policy-rc.d").exists() == policy_exists
    assert "create_main_cluster = false" in (tmp_path / "pg" / "createcluster.conf").read_text()


@pytest.mark.parametrize("policy_exists", [True, False])
def test_a_failed_install_says_why(tmp_path: Path, policy_exists: bool) -> None:
    done = _run(tmp_path, apt_exit=100, policy_exists=policy_exists)
    assert done.returncode == 1
    assert "apt-get failed installing postgresql-15 nosuch-pkg" in done.stderr
    assert "E: Unable to locate package nosuch-pkg" in done.stderr
    assert (tmp_path / "policy-rc.d").exists() == policy_exists

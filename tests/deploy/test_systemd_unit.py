"""deploy/systemd/csmstream.service: `systemd-analyze verify` accepts it without a single warning, and it says
what the server needs (restart on failure, SIGTERM to drain with time to finish, settings from a file, a
user of its own, hardening).

The unit's ExecStart names /opt/csmstream/bin/csmstream, where the guide installs it; verify checks that the
binary exists, so the test verifies a copy whose ExecStart points at this machine's csmstream (the one on
PATH, else `python -m csmstream.cli` of this interpreter). Nothing else in the copy changes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "csmstream.service"
INSTALLED_BIN = "/opt/csmstream/bin/csmstream"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (apt-get install systemd)",
)


def _directives(text: str) -> dict[str, dict[str, list[str]]]:
    """section → key → values, in order (systemd allows a key more than once, e.g. Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _local_copy(tmp_path: Path) -> Path:
    program = shutil.which("csmstream") or f"{sys.executable} -m csmstream.cli"
    text = UNIT.read_text()
    assert INSTALLED_BIN in text, f"the unit should start {INSTALLED_BIN}"
    copy = tmp_path / "csmstream.service"  # verify wants a unit name
    copy.write_text(text.replace(INSTALLED_BIN, program))
    return copy


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit_without_warnings(tmp_path):
    copy = _local_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    # an unknown key or a bad value is only a warning (exit status 0): any output is a failure here
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


@needs_systemd_analyze
def test_the_units_hardening_scores_ok(tmp_path):
    copy = _local_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    # systemd's scale: 0 safest, 10 unprotected; below 5 it calls the service "OK" or better
    assert float(match.group(1)) < 5.0, result.stdout


def test_the_unit_restarts_on_failure_and_stops_by_draining():
    from csmstream.commands.serve import GRACEFUL_SHUTDOWN_S
    from csmstream.server.drain import ABORT_GRACE_S

    service = _directives(UNIT.read_text())["Service"]
    assert service["Restart"] == ["on-failure"]  # exit status 3 (engine failed), crashes, kills
    assert service["KillSignal"] == ["SIGTERM"]  # SIGTERM drains (server/drain.py)
    exec_start = service["ExecStart"][0].split()
    assert exec_start[:2] == [INSTALLED_BIN, "serve"], exec_start
    drain_timeout_s = float(exec_start[exec_start.index("--drain-timeout") + 1])
    # a stop may take the drain timeout, the errors' grace and uvicorn's own shutdown: SIGKILL only after that
    needed_s = drain_timeout_s + ABORT_GRACE_S + GRACEFUL_SHUTDOWN_S
    assert float(service["TimeoutStopSec"][0]) > needed_s, (service["TimeoutStopSec"], needed_s)
    assert service["EnvironmentFile"] == ["-/etc/csmstream/csmstream.env"]
    assert service["User"] == ["csmstream"] and service["Group"] == ["csmstream"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectKernelModules"):
        assert hardening in service, hardening
    # these would hide the GPU or forbid torch.compile's generated code
    assert "PrivateDevices" not in service and "MemoryDenyWriteExecute" not in service


def test_the_example_settings_are_known_settings():
    """Every CSMSTREAM_* name in the example settings file is a `Settings` field (no silent typo)."""
    from csmstream.config import Settings

    example = (REPO / "deploy" / "systemd" / "csmstream.env.example").read_text()
    names = re.findall(r"^#?(CSMSTREAM_\w+)=", example, flags=re.MULTILINE)
    assert names
    known = {f"CSMSTREAM_{field.upper()}" for field in Settings.model_fields}
    assert set(names) <= known, sorted(set(names) - known)

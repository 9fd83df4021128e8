"""deploy/docker/Dockerfile.{cpu,gpu}, their healthcheck and deploy/compose.yaml, checked without Docker: the
instructions a deployment relies on are there (an unprivileged user, a HEALTHCHECK on /health/ready, weights
and voices on volumes, the port exposed, SIGTERM to drain with time to finish), the settings they name are
real `Settings`, and the healthcheck script answers by the status code. Where `docker-compose` or
`docker compose` is installed, compose also parses the file. Building and running an image is
deploy/docker/smoke_test.sh (see deploy/README.md for what was run where)."""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILES = [DEPLOY / "docker" / "Dockerfile.cpu", DEPLOY / "docker" / "Dockerfile.gpu"]
HEALTHCHECK_SCRIPT = DEPLOY / "docker" / "healthcheck.py"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = [[]]
    for line in logical:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def _settings_names() -> set[str]:
    from csmstream.config import Settings

    return {f"CSMSTREAM_{name.upper()}" for name in Settings.model_fields}


def _env(instructions) -> dict[str, str]:
    env = {}
    for word, rest in instructions:
        if word == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", rest))
    return env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_image_runs_the_server_unprivileged_with_a_readiness_healthcheck(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.MULTILINE), "the base image is a build argument"
    final = _instructions(dockerfile)
    words = [word for word, _ in final]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "USER after the last RUN"

    (healthcheck,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert "healthcheck.py" in healthcheck and "--start-period=" in healthcheck, healthcheck
    copied = [rest for word, rest in final if word == "COPY" and "healthcheck.py" in rest]
    assert copied and copied[0].split()[-1] in healthcheck, (copied, healthcheck)

    (volume,) = [rest for word, rest in final if word == "VOLUME"]
    assert "/data/voices" in volume and "/data/huggingface" in volume, volume
    env = _env(final)
    assert env["CSMSTREAM_VOICES_DIR"] == "/data/voices" and env["HF_HOME"] == "/data/huggingface", env
    assert env["CSMSTREAM_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert ("EXPOSE", env["CSMSTREAM_PORT"]) in final, "EXPOSE the port the server listens on"
    assert {name for name in env if name.startswith("CSMSTREAM_")} <= _settings_names(), env

    assert ("STOPSIGNAL", "SIGTERM") in final  # SIGTERM drains (server/drain.py)
    (entrypoint,) = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entrypoint == '["csmstream", "serve"]', entrypoint


def test_the_gpu_image_starts_from_a_cuda_runtime():
    text = (DEPLOY / "docker" / "Dockerfile.gpu").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.MULTILINE).group(1)
    assert base.startswith("nvidia/cuda:") and "-runtime-" in base, base
    assert "CSMSTREAM_ENGINE=csm" in text  # no silent fall-back to the piper voice on a GPU machine


class _Status(http.server.BaseHTTPRequestHandler):
    codes: dict[str, int] = {"/health/ready": 200, "/health/live": 200}

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        code = self.codes.get(self.path, 404)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"ready": false, "reason": "draining"}' if code != 200 else b"{}")

    def log_message(self, *args) -> None:
        return None


def _healthcheck(port: int, path: str | None = None) -> int:
    env = {"CSMSTREAM_PORT": str(port), **({"CSMSTREAM_HEALTHCHECK_PATH": path} if path else {})}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT)], env=env, capture_output=True, timeout=30
    ).returncode


def test_the_healthcheck_script_follows_the_status_code():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert _healthcheck(port) == 0
        _Status.codes["/health/ready"] = 503  # draining: not ready, still live
        assert _healthcheck(port) == 1
        assert _healthcheck(port, "/health/live") == 0
    finally:
        _Status.codes["/health/ready"] = 200
        server.shutdown()
        server.server_close()
    assert _healthcheck(port) == 1  # nothing listens


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_the_server_with_optional_llm_and_tunnel_profiles():
    from csmstream.commands.serve import GRACEFUL_SHUTDOWN_S
    from csmstream.server.drain import ABORT_GRACE_S

    services = _compose()["services"]
    server = services["csmstream"]
    assert "profiles" not in server  # always on
    assert server["build"]["dockerfile"] == "deploy/docker/Dockerfile.gpu"
    assert all(port.startswith("127.0.0.1:") for port in server["ports"]), server["ports"]
    mounts = {volume.split(":")[1] for volume in server["volumes"]}
    assert {"/data/voices", "/data/huggingface"} <= mounts, mounts
    command = server["command"]
    drain_timeout_s = float(command[command.index("--drain-timeout") + 1])
    grace_s = float(server["stop_grace_period"].rstrip("s"))
    assert grace_s > drain_timeout_s + ABORT_GRACE_S + GRACEFUL_SHUTDOWN_S, (grace_s, drain_timeout_s)
    assert server["stop_signal"] == "SIGTERM"
    assert server["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert services["llm"]["profiles"] == ["llm"] and "vllm" in services["llm"]["image"]
    assert services["llm-cpu"]["profiles"] == ["llm-cpu"] and "llama.cpp" in services["llm-cpu"]["image"]
    assert services["cloudflared"]["profiles"] == ["tunnel"]
    assert "TUNNEL_TOKEN" in services["cloudflared"]["environment"]


def test_the_example_settings_files_name_real_settings():
    names = set()
    for example in (DEPLOY / "docker" / "csmstream.env.example", DEPLOY / "compose.env.example"):
        names |= set(re.findall(r"^#?\s*(CSMSTREAM_\w+)=", example.read_text(), flags=re.MULTILINE))
    assert names and names <= _settings_names(), sorted(names - _settings_names())
    # the secrets copied from them are never committed
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in ignored and "csmstream.env" in ignored


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_compose_accepts_the_file_with_every_profile(tmp_path):
    command = _compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    # a copy beside the example settings, as a user would lay it out (compose reads .env next to the file)
    shutil.copy(DEPLOY / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(DEPLOY / "compose.env.example", tmp_path / ".env")
    shutil.copy(DEPLOY / "docker" / "csmstream.env.example", tmp_path / "csmstream.env")
    profiles = ["--profile", "llm", "--profile", "llm-cpu", "--profile", "tunnel"]
    result = subprocess.run(
        [*command, "-f", str(tmp_path / "compose.yaml"), *profiles, "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"csmstream", "llm", "llm-cpu", "cloudflared"}, result.stdout

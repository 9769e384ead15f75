"""`make serve`: the production command line of Procfile.production serves the app, with
production settings, and answers a load balancer's /healthz over plain http."""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_security_headers import PRODUCTION

ROOT = Path(__file__).resolve().parents[1]


def procfile(name):
    lines = dict(line.split(": ", 1) for line in (ROOT / name).read_text().splitlines() if line.strip())
    return lines


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_production_web_command_serves_healthz_and_pages_with_production_settings(tmp_path):
    port = free_port()
    env = {
        **os.environ, **PRODUCTION,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "BIND": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "2",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    web = procfile("Procfile.production")["web"]
    command = [re.sub(r"\$(\w+)", lambda m: env[m[1]], part) for part in shlex.split(web)]
    command[0] = str(Path(sys.executable).parent / "granian")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Host": "studio.example.com"}
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/healthz/", headers=headers)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stdout.read1().decode()
                time.sleep(0.2)
        page = httpx.get(f"{base}/login/", headers=headers)
        proxied = httpx.get(f"{base}/welcome/", headers={**headers, "X-Forwarded-Proto": "https"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert health.status_code == 200, health.text
    assert health.json()["checks"]["database"]["ok"]
    assert page.status_code == 301 and page.headers["Location"] == "https://studio.example.com/login/"
    assert proxied.status_code == 200
    assert "Strict-Transport-Security" in proxied.headers and "Content-Security-Policy" in proxied.headers


def test_the_worker_command_is_the_same_in_both_procfiles():
    assert procfile("Procfile.production")["worker"] == procfile("Procfile")["worker"]

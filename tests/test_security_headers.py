"""Security headers: a Content-Security-Policy with no inline code on every page, and with an
https public address, HSTS, secure cookies and a clean `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "DEBUG": "false",
    "STUDIO_PUBLIC_URL": "https://studio.example.com",
    "ALLOWED_HOSTS": "studio.example.com",
    "SECRET_KEY": "k3J9-vQ2x_Lp8mN4rT6yW1zA5cB7dE0fG2hI4jK6lM8nO0pQ2rS4tU6vW8xY0z_prod",
}


@pytest.fixture
def run(tmp_path):
    def run(*args):
        env = {**os.environ, **PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for the browser tests, never in production
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    return run


@pytest.mark.parametrize("url", ["/login/", "/", "/gallery/", "/team/", "/password/reset/"])
def test_every_page_has_a_policy_without_inline_code_or_eval(url, client_alice):
    response = client_alice.get(url)
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


def test_no_page_carries_inline_scripts_or_style_attributes(client_alice, team, alice):
    from tests.factories import make_task, run_until_final

    task = run_until_final(make_task(team, alice))
    for url in ("/", "/gallery/", f"/gallery/{task.images.get().pk}/", f"/tasks/{task.pk}/", "/team/", "/providers/"):
        html = client_alice.get(url).content.decode()
        assert " style=" not in html, url
        for tag in html.split("<script")[1:]:
            head = tag.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, (url, head)


def test_media_keep_their_own_stricter_policy(client_alice, team, alice):
    from tests.factories import make_task, run_until_final

    image = run_until_final(make_task(team, alice)).images.get()
    response = client_alice.get(f"/media/image/{image.pk}/")
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_check_deploy_with_production_settings_reports_nothing(run):
    result = run("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_an_https_address_turns_on_hsts_secure_cookies_and_the_redirect_to_https(run):
    code = (
        "from django.test import Client; c = Client(); "
        "r = c.get('/welcome/', secure=True, HTTP_HOST='studio.example.com'); "
        "print(r.status_code, r.get('Strict-Transport-Security'), r.cookies['csrftoken']['secure']); "
        "r = c.get('/welcome/', HTTP_HOST='studio.example.com'); print(r.status_code, r['Location'])"
    )
    assert run("migrate", "--noinput").returncode == 0
    result = run("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()[-2:]
    assert first == "200 max-age=31536000; includeSubDomains True"
    assert second == "301 https://studio.example.com/welcome/"

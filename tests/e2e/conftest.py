import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Drive Debian's Chromium; `playwright install` is never run."""
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def script_errors():
    """Uncaught script errors and Content-Security-Policy refusals in any page the test opens;
    any of them fails the test."""
    problems = []
    yield problems
    assert not problems, problems


def watch(page, problems):
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))

    def console(message):
        if message.type == "error" and ("Content Security Policy" in message.text or "Refused to" in message.text):
            problems.append(f"CSP: {message.text}")

    page.on("console", console)
    return page


@pytest.fixture(autouse=True)
def _watch_pages(request, script_errors):
    if "page" in request.fixturenames or "context" in request.fixturenames:
        request.getfixturevalue("context").on("page", lambda page: watch(page, script_errors))


@pytest.fixture
def new_context(new_context, script_errors):
    """pytest-playwright's factory, with every page of every new context watched too."""
    def make(**kwargs):
        context = new_context(**kwargs)
        context.on("page", lambda page: watch(page, script_errors))
        return context

    return make


@contextmanager
def worker_process(log_path, **env):
    """`manage.py worker` as a subprocess on the live test database and this test's media
    folder, with extra environment settings; killed with its process group at the end."""
    from django.conf import settings

    from tests.workers import ROOT, worker_env

    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--interval", "0.1"],
            cwd=ROOT, env={**worker_env(settings.MEDIA_ROOT), **env},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

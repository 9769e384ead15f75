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


@contextmanager
def worker_process(log_path, **env):
    """`manage.py worker` as a subprocess on the live test database and this test's media
    folder, with extra environment settings; killed with its process group at the end."""
    from django.conf import settings

    from tests.gallery.test_worker import ROOT, worker_env

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

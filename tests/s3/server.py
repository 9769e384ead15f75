"""The test suite's S3 server: npm's s3rver, started by tests/s3/server.js on 127.0.0.1 at a free
port with its files in a temporary folder. A real server over a real socket, not a mock: it
refuses requests whose SigV4 signature is wrong or missing and presigned URLs that expired.

`make test` installs it (`npm ci --prefix tests/s3`); without Node.js the S3 tests skip."""

import os
import select
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from unittest import mock

import boto3
from botocore.config import Config

HERE = Path(__file__).resolve().parent
S3RVER = HERE / "node_modules" / "s3rver"
ACCESS_KEY = SECRET_KEY = "S3RVER"  # s3rver's one account
START_SECONDS = 20
# Left to settings.py's defaults, whatever the shell running the tests has set.
DEFAULTED = ("S3_SECRET_ACCESS_KEY_FILE", "S3_REGION", "S3_ADDRESSING_STYLE", "S3_URL_EXPIRE_SECONDS")


def unavailable():
    """Why the server cannot run here, or None."""
    if not shutil.which("node"):
        return "Node.js is not installed: the S3 storage tests need node and npm (apt-get install nodejs npm)"
    if not S3RVER.is_dir():
        return "s3rver is not installed: run `npm ci --prefix tests/s3` (`make test` does it)"
    return None


class LocalS3:
    """One s3rver process; each test takes a fresh bucket of it."""

    def __init__(self, directory):
        # Its standard input is a pipe from us: when this process dies, the server stops too.
        self.process = subprocess.Popen(
            ["node", str(HERE / "server.js"), str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = self._port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._wait_until_accepting()
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def _port(self):
        # server.js prints the port the system gave it once it listens.
        ready, _, _ = select.select([self.process.stdout], [], [], START_SECONDS)
        line = self.process.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"s3rver did not start (it said {line!r})")
        return int(line)

    def _wait_until_accepting(self):
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("s3rver does not accept connections") from None
                time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()

    def new_bucket(self):
        return Bucket(self, f"test-{uuid.uuid4().hex[:16]}")


class Bucket:
    """A bucket of its own for one test, and what tests ask of it."""

    def __init__(self, server, name):
        self.server, self.name, self.client = server, name, server.client
        self.client.create_bucket(Bucket=name)

    def storage(self, **options):
        """STORAGES["default"] for this bucket: exactly what settings.py builds from the S3_*
        variables (it runs with them set), with `options` changed."""
        from seedream_site.settings import s3_storage

        env = {
            "S3_ENDPOINT_URL": self.server.endpoint_url,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        with mock.patch.dict(os.environ, env):
            for name in DEFAULTED:
                os.environ.pop(name, None)
            config = s3_storage(self.name)
        config["OPTIONS"].update(options)
        return config

    def use(self, settings, **options):
        """Makes this bucket the default storage until the test ends. Django drops its cached
        storages when STORAGES changes (django.test.signals.storages_changed), both now and when
        pytest-django's `settings` puts the old value back."""
        settings.STORAGES = {**settings.STORAGES, "default": self.storage(**options)}
        return self

    def keys(self):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key):
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def put(self, key, data):
        self.client.put_object(Bucket=self.name, Key=key, Body=data)

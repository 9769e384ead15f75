"""The test suite's Redis: a private `redis-server` on 127.0.0.1 at a free port, in memory only,
started once per test process (so parallel test processes and anything else using the machine's
Redis never share a queue). Without the binary, a Redis at REDIS_TEST_URL (default
redis://127.0.0.1:6379) is used, on a database number of its own; if neither is there the Redis
tests skip and say why. `make test` installs redis-server where it can (Debian's package)."""

import os
import random
import shutil
import socket
import subprocess
import time

import redis

START_SECONDS = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(url):
    try:
        return redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError:
        return False


class LocalRedis:
    """A Redis for this test process; `url` is what TASKS_BACKEND gets, `stop()` ends it."""

    def __init__(self, directory):
        self.process = None
        if shutil.which("redis-server"):
            port = free_port()
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(directory), "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            self.url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + START_SECONDS
            while not reachable(self.url):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
        else:
            base = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379").rstrip("/")
            self.url = f"{base}/{random.randint(1, 15)}"

    def unavailable(self):
        if not reachable(self.url):
            return (
                f"no Redis: redis-server is not installed and {self.url} does not answer "
                "(apt-get install redis-server, or set REDIS_TEST_URL)"
            )
        return None

    def client(self):
        return redis.Redis.from_url(self.url)

    def flush(self):
        self.client().flushdb()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

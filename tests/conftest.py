import os

import pytest

from gallery.models import Role
from tests import redis_server
from tests.factories import make_team, make_user
from tests.s3 import server as s3

# Playwright's sync API runs an event loop in the test thread; Django's ORM must still work there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _media_storage(settings, tmp_path):
    """Every test stores files in its own temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"  # storage listens for this change


@pytest.fixture(autouse=True)
def _fast_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SANDBOX_QUEUE_SECONDS = 0
    settings.SANDBOX_RUN_SECONDS = 0
    settings.TASK_FIRST_CHECK_SECONDS = 0
    settings.TASK_CHECK_SECONDS = 0.2
    settings.AXES_ENABLED = True
    # The fake upstreams serve results from 127.0.0.1 over http; hostile-address tests turn these off.
    settings.ALLOW_HTTP_URLS = True
    settings.ALLOW_LOOPBACK_URLS = True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The local S3 server (npm's s3rver), started once per test session; skips without Node.js."""
    if reason := s3.unavailable():
        pytest.skip(reason)
    server = s3.LocalS3(tmp_path_factory.mktemp("s3rver"))
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket of the local S3 server for this test (not yet the default storage)."""
    return s3_server.new_bucket()


@pytest.fixture
def s3_storage(settings, s3_bucket):
    """This test stores its files in a fresh bucket of the local S3 server."""
    return s3_bucket.use(settings)


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory):
    """A Redis of this test process's own (tests/redis_server.py); skips when there is none."""
    server = redis_server.LocalRedis(tmp_path_factory.mktemp("redis"))
    if reason := server.unavailable():
        server.stop()
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture
def rq_queue(settings, redis_service):
    """This test enqueues its jobs on Redis through the RQ backend (TASKS_BACKEND=redis://…), on
    an empty Redis."""
    redis_service.flush()
    settings.RQ_QUEUES = {"default": {"URL": redis_service.url, "DEFAULT_TIMEOUT": 600}}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    return redis_service


@pytest.fixture
def alice(db):
    """Owner of the Studio team."""
    return make_user("alice", first_name="Alice")


@pytest.fixture
def bob(db):
    """Alice's teammate (member)."""
    return make_user("bob", first_name="Bob")


@pytest.fixture
def charlie(db):
    """An outsider: owner of another team."""
    return make_user("charlie", first_name="Charlie")


@pytest.fixture
def team(alice, bob):
    return make_team("Studio", alice, (bob, Role.MEMBER))


@pytest.fixture
def other_team(charlie):
    return make_team("Rivals", charlie)


@pytest.fixture
def client_alice(client, alice, team):
    client.force_login(alice, backend="gallery.auth.EmailOrUsernameBackend")
    return client


@pytest.fixture
def client_bob(client, bob, team):
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    return client


@pytest.fixture
def client_charlie(client, charlie, other_team):
    client.force_login(charlie, backend="gallery.auth.EmailOrUsernameBackend")
    return client

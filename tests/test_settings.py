"""Settings come from the environment; a malformed value stops start-up and names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def start(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    "name,value",
    [
        ("DEBUG", "maybe"),
        ("TASK_DEADLINE_SECONDS", "soon"),
        ("TASK_DEADLINE_SECONDS", "0"),
        ("SANDBOX_RUN_SECONDS", "fast"),
        ("EVOLINK_PRICE_PER_IMAGE", "-1"),
        ("PRICES", "evolink:doubao-seedream-4.5=cheap"),
        ("PRICES", "evolink=-0.1"),
        ("PRICES", "a:b:c:d=1"),
        ("PRICES", "evolnk:doubao-seedream-4.0=0.02"),
        ("PRICES", "evolink:doubao-seedream-4.5:1K=0.02"),
        ("DEFAULT_MODEL", "doubao-seedream-9"),
        ("STUDIO_PUBLIC_URL", "studio.example.com"),
        ("TASKS_BACKEND", "carrier-pigeon"),
        ("DATABASE_URL", "nosuchdb://x"),
    ],
)
def test_a_malformed_setting_stops_start_up_naming_the_variable(name, value):
    result = start(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_prices_and_the_default_model_come_from_the_environment():
    show = "from django.conf import settings; print(sorted(settings.PRICE_OVERRIDES.items()), settings.DEFAULT_MODEL)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DEFAULT_MODEL": "doubao-seedream-4.5", "EVOLINK_PRICE_PER_IMAGE": "0.02",
             "PRICES": "evolink:doubao-seedream-5.0-pro=0.05, byteplus:doubao-seedream-4.5:4K=0.045"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "[('byteplus:doubao-seedream-4.5:4K', Decimal('0.045')), ('evolink:doubao-seedream-4.0', Decimal('0.02')), "
        "('evolink:doubao-seedream-5.0-pro', Decimal('0.05'))] doubao-seedream-4.5"
    )


def test_the_defaults_start_cleanly():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode_with_immediate_transactions():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert connection.settings_dict["OPTIONS"]["timeout"] >= 20


def test_a_shared_database_without_a_secret_key_refuses_to_start_and_says_how_to_set_one():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEY_FILE")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env={**env, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr


def test_the_secret_key_can_come_from_a_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("a-key-from-a-file-that-is-long-enough-0123456789\n")
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT, env={**env, "SECRET_KEY_FILE": str(key_file), "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "a-key-from-a-file-that-is-long-enough-0123456789"


def test_callback_tokens_made_on_one_machine_verify_on_another_with_the_shared_key(tmp_path):
    """Two processes with the same SECRET_KEY but separate working folders (no shared .secret_key
    file) compute the same callback token: what the worker signs, the web machine accepts."""
    code = "from gallery.pipeline import callback_token; print(callback_token('5f1c'))"
    tokens = set()
    for machine in ("web", "worker"):
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT, env={**os.environ, "SECRET_KEY": "one-key-for-every-machine-0123456789abcdef",
                           "HOME": str(tmp_path / machine)},
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        tokens.add(result.stdout.splitlines()[-1])
    assert len(tokens) == 1


S3 = {"S3_BUCKET": "media", "S3_ACCESS_KEY_ID": "key-id", "S3_SECRET_ACCESS_KEY": "secret"}
S3_DEFAULTED = ("S3_ENDPOINT_URL", "S3_REGION", "S3_ADDRESSING_STYLE", "S3_URL_EXPIRE_SECONDS")


@pytest.mark.parametrize(
    "env,name",
    [
        ({"S3_BUCKET": "media"}, "S3_ACCESS_KEY_ID"),
        ({"S3_BUCKET": "media", "S3_ACCESS_KEY_ID": "key-id"}, "S3_SECRET_ACCESS_KEY"),
    ],
)
def test_s3_bucket_without_its_keys_stops_start_up_naming_the_missing_one(env, name):
    result = start(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"S3_BUCKET is set but {name}" in result.stderr


def test_a_complete_s3_configuration_starts_cleanly():
    result = start(**S3, S3_ENDPOINT_URL="http://127.0.0.1:4569", S3_ADDRESSING_STYLE="virtual")
    assert result.returncode == 0, result.stderr


def s3_storage_with(monkeypatch, **env):
    """What settings.py builds for STORAGES["default"] under this environment."""
    from seedream_site.settings import s3_storage

    for name in (*S3, *S3_DEFAULTED, "S3_SECRET_ACCESS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**S3, **env}.items():
        monkeypatch.setenv(name, value)
    return s3_storage("media")


@pytest.mark.parametrize(
    "env,name",
    [
        ({"S3_ADDRESSING_STYLE": "sideways"}, "S3_ADDRESSING_STYLE"),
        ({"S3_URL_EXPIRE_SECONDS": "0"}, "S3_URL_EXPIRE_SECONDS"),
        ({"S3_URL_EXPIRE_SECONDS": "604801"}, "S3_URL_EXPIRE_SECONDS"),  # SigV4's limit is a week
        ({"S3_URL_EXPIRE_SECONDS": "soon"}, "S3_URL_EXPIRE_SECONDS"),
        ({"S3_ENDPOINT_URL": "127.0.0.1:4569"}, "S3_ENDPOINT_URL"),
        ({"S3_SECRET_ACCESS_KEY": "", "S3_SECRET_ACCESS_KEY_FILE": "/no/file"}, "S3_SECRET_ACCESS_KEY_FILE"),
        ({"S3_SECRET_ACCESS_KEY_FILE": "/no/file"}, "S3_SECRET_ACCESS_KEY_FILE"),  # as well as the key
    ],
)
def test_a_malformed_s3_setting_names_the_variable(monkeypatch, env, name):
    with pytest.raises(ImproperlyConfigured, match=name):
        s3_storage_with(monkeypatch, **env)


def test_s3_bucket_makes_private_s3_storage_the_default(tmp_path, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")

    storage = s3_storage_with(
        monkeypatch, S3_SECRET_ACCESS_KEY="", S3_SECRET_ACCESS_KEY_FILE=str(secret_file)
    )

    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    options = storage["OPTIONS"]
    assert (options["bucket_name"], options["access_key"], options["secret_key"]) == (
        "media",
        "key-id",
        "from-a-file",
    )
    assert options["endpoint_url"] is None  # AWS itself
    assert (options["region_name"], options["addressing_style"], options["signature_version"]) == (
        "us-east-1",
        "path",
        "s3v4",
    )
    assert options["querystring_auth"] is True and options["querystring_expire"] == 300
    assert options["default_acl"] is None and options["file_overwrite"] is True

"""Settings come from the environment; a malformed value stops start-up and names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
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

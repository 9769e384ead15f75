"""/healthz: what a load balancer or a monitor asks, without signing in."""

from datetime import timedelta

import pytest
from django.utils import timezone

from gallery.models import WorkerHeartbeat
from tests.factories import make_task


def get(client, query=""):
    response = client.get(f"/healthz/{query}")
    return response, response.json()


def test_it_answers_anyone_with_json_even_on_an_empty_instance(client, db):
    response, body = get(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "storage", "queue", "workers"}
    assert body["checks"]["storage"]["free_bytes"] > 0
    assert body["checks"]["queue"] == {**body["checks"]["queue"], "backend": "database", "depth": 0,
                                       "oldest_wait_seconds": None}


def test_it_is_cheap(client, db, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        assert client.get("/healthz/").status_code == 200


def test_it_reports_queue_depth_and_the_oldest_wait(client, team, alice, django_capture_on_commit_callbacks):
    from django_tasks_db.models import DBTaskResult

    with django_capture_on_commit_callbacks(execute=True):
        make_task(team, alice)
        make_task(team, alice)
    DBTaskResult.objects.filter(pk=DBTaskResult.objects.order_by("enqueued_at").first().pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=120)
    )
    # A job due later is not waiting yet.
    later = DBTaskResult.objects.order_by("enqueued_at").last()
    DBTaskResult.objects.create(**{f.name: getattr(later, f.name) for f in DBTaskResult._meta.concrete_fields
                                   if f.name not in ("id", "run_after")}, run_after=timezone.now() + timedelta(hours=1))

    queue = get(client)[1]["checks"]["queue"]

    assert queue["depth"] == 2
    assert 119 <= queue["oldest_wait_seconds"] < 180


def test_without_workers_only_the_monitors_form_fails(client, db):
    assert get(client)[0].status_code == 200
    response, body = get(client, "?workers=1")

    assert response.status_code == 503
    assert body["failing"] == ["workers"]
    assert body["checks"]["workers"] == {**body["checks"]["workers"], "alive": 0, "last_heartbeat_seconds": None}


def test_a_worker_that_beat_lately_counts_as_alive(client, db):
    WorkerHeartbeat.objects.create(worker_id="w1", hostname="a", pid=1, last_seen=timezone.now() - timedelta(seconds=2))
    WorkerHeartbeat.objects.create(worker_id="w2", hostname="b", pid=2, last_seen=timezone.now() - timedelta(hours=1))

    response, body = get(client, "?workers=1")

    assert response.status_code == 200
    assert body["checks"]["workers"]["alive"] == 1
    assert 1 <= body["checks"]["workers"]["last_heartbeat_seconds"] < 60


def test_a_queue_that_waits_too_long_fails_the_monitors_form(client, team, alice, settings,
                                                            django_capture_on_commit_callbacks):
    from django_tasks_db.models import DBTaskResult

    WorkerHeartbeat.objects.create(worker_id="w1", hostname="a", pid=1)
    with django_capture_on_commit_callbacks(execute=True):
        make_task(team, alice)
    DBTaskResult.objects.update(enqueued_at=timezone.now() - timedelta(seconds=settings.HEALTHZ_MAX_WAIT_SECONDS + 5))

    assert get(client)[0].status_code == 200
    response, body = get(client, "?workers=1")
    assert response.status_code == 503
    assert body["failing"] == ["queue_wait"]


def test_storage_that_refuses_us_makes_it_503_without_saying_more_than_the_error_class(
    client, db, s3_bucket, settings
):
    s3_bucket.use(settings, secret_key="not-the-key")

    response, body = get(client)

    assert response.status_code == 503
    assert body["failing"] == ["storage"]
    assert body["checks"]["storage"]["error"] == "ClientError"
    assert "not-the-key" not in response.content.decode()


def test_object_storage_that_answers_is_healthy(client, db, s3_storage):
    response, body = get(client)
    assert response.status_code == 200
    assert body["checks"]["storage"]["ok"]


def test_it_reports_the_redis_queue(client, team, alice, rq_queue, django_capture_on_commit_callbacks):
    from gallery import pipeline

    with django_capture_on_commit_callbacks(execute=True):
        task = make_task(team, alice)
    pipeline.enqueue(task.pk, run_after=timezone.now() - timedelta(seconds=30))  # due, not yet moved
    pipeline.enqueue(task.pk, run_after=timezone.now() + timedelta(hours=1))  # not waiting yet

    queue = get(client)[1]["checks"]["queue"]

    assert queue["backend"] == "redis" and queue["depth"] == 2
    assert 29 <= queue["oldest_wait_seconds"] < 120


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_it_only_reads(client, db, method):
    assert getattr(client, method)("/healthz/").status_code == 405

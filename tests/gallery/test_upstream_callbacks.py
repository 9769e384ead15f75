"""The upstream callback only wakes a task: the studio re-reads it; the body is never trusted."""

from datetime import timedelta

from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from gallery import pipeline
from gallery.models import GenerationTask, Status
from gallery.pipeline import callback_token
from tests.factories import make_task


def url(task, token=None):
    return f"/upstream/evolink/{task.pk}/{token or callback_token(task.pk)}/"


def submitted(team, user, settings):
    settings.SANDBOX_RUN_SECONDS = 60
    task = make_task(team, user)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    later = timezone.now() + timedelta(minutes=1)
    GenerationTask.objects.filter(pk=task.pk).update(next_check_at=later)
    DBTaskResult.objects.all().delete()
    return task


def test_a_callback_checks_the_task_now(client, team, alice, settings):
    task = submitted(team, alice, settings)
    forged = {"id": task.upstream_id, "status": "completed", "results": ["https://evil.example/x.png"]}
    response = client.post(url(task), forged, content_type="application/json")
    assert response.status_code == 204
    task.refresh_from_db()
    assert task.next_check_at <= timezone.now()
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    # The forged body changed nothing: only the studio's own GET moves the task.
    assert task.status == Status.SUBMITTED and task.result_urls == []


def test_a_callback_with_a_wrong_token_is_404_and_wakes_nothing(client, team, alice, settings):
    task = submitted(team, alice, settings)
    assert client.post(url(task, token="0" * 32)).status_code == 404
    assert not DBTaskResult.objects.exists()


def test_a_callback_for_a_finished_task_does_nothing(client, team, alice, settings):
    task = submitted(team, alice, settings)
    GenerationTask.objects.filter(pk=task.pk).update(status=Status.COMPLETED)
    assert client.post(url(task)).status_code == 204
    assert not DBTaskResult.objects.exists()


def test_only_post_is_allowed(client, team, alice, settings):
    task = submitted(team, alice, settings)
    assert client.get(url(task)).status_code == 405

"""The hot queries use an index on PostgreSQL, not a scan of the table: the gallery's keyset pages,
the history (ORM and the poll's plain SQL), and the sweeper's three reads. On tables with enough
rows (~30,000 tasks and images over 30 teams, one team with 15,000, a few dozen tasks unfinished)
and fresh statistics (ANALYZE), as a large install's planner would see them."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from gallery import history
from gallery.models import FINAL_STATES, GalleryImage, GenerationTask, Status, Team
from gallery.sweeper import BATCH
from tests.factories import make_user

pytestmark = pytest.mark.django_db

TEAMS, PER_TEAM, BIG_TEAM = 30, 500, 15000


@pytest.fixture
def big_install():
    if connection.vendor != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL (CI's second run: DATABASE_URL=postgres://…)")
    owner = make_user("owner")
    teams = [Team.create_with_owner(f"Team {i}", owner) for i in range(TEAMS)]
    now = timezone.now()
    tasks, images = [], []
    big = teams[TEAMS // 2]
    for t, team in enumerate(teams):
        for i in range(BIG_TEAM if team == big else PER_TEAM):
            created = now - timedelta(minutes=i * 7 + t)
            unfinished = i < 2  # the newest two of each team are still running
            task = GenerationTask(
                id=uuid.uuid4(), team=team, created_by=owner, prompt=f"Task {i}", sent_prompt=f"Task {i}",
                size="1:1", quality="2K", provider="sandbox", created_at=created, updated_at=created,
                status=Status.RUNNING if unfinished else Status.COMPLETED, storage_key=f"k{t}-{i}",
                next_check_at=now + timedelta(seconds=3) if unfinished else created,
                deadline_at=created + timedelta(minutes=15), tidy_pending=(i == 2),
            )
            tasks.append(task)
            if not unfinished:
                images.append(GalleryImage(
                    team=team, task=task, index=0, file=f"results/{team.pk}/x/k{t}-{i}-0.png",
                    thumbnail=f"results/{team.pk}/x/k{t}-{i}-0.thumb.webp", width=64, height=48, format="PNG",
                    bytes=100, sha256="0" * 64, created_at=created,
                ))
    GenerationTask.objects.bulk_create(tasks, batch_size=2000)
    GalleryImage.objects.bulk_create(images, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return big, owner


def plan(queryset_or_sql, params=()):
    if isinstance(queryset_or_sql, str):
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {queryset_or_sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())
    return queryset_or_sql.explain()


def assert_uses_index(text, *names):
    assert "Seq Scan" not in text, text
    assert any(name in text for name in names), text


def test_the_hot_queries_read_by_index_not_by_scanning_the_table(big_install):
    """One test, so the 30,000 rows are built once."""
    team, _ = big_install
    now = timezone.now()

    # The gallery's keyset pages: the first, and one 250 pages deep.
    images = GalleryImage.objects.for_team(team)
    deep = images.order_by("-created_at", "-id")[10000:10001].get()
    assert_uses_index(plan(images.newest_first()[:41]), "image_keyset")
    assert_uses_index(plan(images.newest_first().older_than(deep.created_at, deep.pk)[:41]), "image_keyset")

    # The history, and its poll's plain SQL (gallery.history.version).
    assert_uses_index(plan(GenerationTask.objects.for_team(team).recent(history.SIZE)), "task_team_recent")
    sql = (f"SELECT id, updated_at, status FROM {GenerationTask._meta.db_table} WHERE team_id = %s "
           f"ORDER BY created_at DESC, id DESC LIMIT {history.SIZE}")
    assert_uses_index(plan(sql, [team.pk]), "task_team_recent")

    # The sweeper's reads (gallery.sweeper): overdue checks, deadlines; and the unfinished tasks.
    overdue = (
        GenerationTask.objects.needing_work().lease_free(now)
        .filter(next_check_at__lt=now - timedelta(seconds=30)).values_list("pk", "next_check_at")[:BATCH]
    )
    expired = GenerationTask.objects.unfinished().lease_free(now).filter(deadline_at__lt=now)[:BATCH]
    unfinished = GenerationTask.objects.unfinished()
    assert_uses_index(plan(overdue), "task_unfinished", "task_tidy")
    assert_uses_index(plan(expired), "task_unfinished")
    assert_uses_index(plan(unfinished.values("pk")), "task_unfinished")
    assert unfinished.count() == 2 * TEAMS
    assert not set(FINAL_STATES) & set(unfinished.values_list("status", flat=True))

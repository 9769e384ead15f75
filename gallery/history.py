"""The studio's history: the team's 20 most recent tasks, and a cheap version of them."""

import hashlib
from dataclasses import dataclass

from django.db import connection
from django.db.models import Prefetch

from gallery.models import GalleryImage, GenerationTask, Status

SIZE = 20
ONLY_MINE_KEY = "history_only_mine"


def _tasks(team, user, only_mine):
    tasks = GenerationTask.objects.for_team(team)
    return tasks.filter(created_by=user) if only_mine else tasks


def version(team, user, only_mine):
    """Changes whenever a listed task changes, appears or goes: one small query.

    Plain SQL hashed as the driver returns it: every unchanged poll runs this, and building
    the ORM query and converting its values cost six times the query itself (bench/poll.py).
    It must order exactly as `recent()` does.
    """
    sql = f"SELECT id, updated_at FROM {GenerationTask._meta.db_table} WHERE team_id = %s"
    params = [team.pk]
    if only_mine:
        sql += " AND created_by_id = %s"
        params.append(user.pk)
    sql += f" ORDER BY created_at DESC, id DESC LIMIT {SIZE}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return hashlib.blake2b(f"{only_mine}|{rows!r}".encode(), digest_size=8).hexdigest()


@dataclass
class History:
    tasks: list
    version: str
    only_mine: bool

    @property
    def running(self):
        return sum(not task.is_final for task in self.tasks)

    @property
    def completed(self):
        return sum(task.status == Status.COMPLETED for task in self.tasks)


def load(team, user, only_mine):
    # The version is read before the tasks: a change in between makes the next poll re-render,
    # where the other order could leave a stale history behind an up-to-date version.
    token = version(team, user, only_mine)
    images = Prefetch("images", queryset=GalleryImage.objects.order_by("index"))
    tasks = list(
        _tasks(team, user, only_mine).select_related("created_by").prefetch_related(images).recent(SIZE)
    )
    return History(tasks=tasks, version=token, only_mine=only_mine)

"""The studio's history: the team's 20 most recent tasks, and a cheap version of them."""

import hashlib
from dataclasses import dataclass

from django.db.models import Prefetch

from gallery.models import GalleryImage, GenerationTask, Status

SIZE = 20
ONLY_MINE_KEY = "history_only_mine"


def _tasks(team, user, only_mine):
    tasks = GenerationTask.objects.for_team(team)
    return tasks.filter(created_by=user) if only_mine else tasks


def version(team, user, only_mine):
    """Changes whenever a listed task changes, appears or goes: one small query."""
    rows = _tasks(team, user, only_mine).recent(SIZE).values_list("id", "updated_at")
    return _digest(only_mine, rows)


def _digest(only_mine, rows):
    text = f"{only_mine}|" + "|".join(f"{pk}:{updated.timestamp()}" for pk, updated in rows)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


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
    images = Prefetch("images", queryset=GalleryImage.objects.order_by("index"))
    tasks = list(
        _tasks(team, user, only_mine).select_related("created_by").prefetch_related(images).recent(SIZE)
    )
    token = _digest(only_mine, [(task.pk, task.updated_at) for task in tasks])
    return History(tasks=tasks, version=token, only_mine=only_mine)

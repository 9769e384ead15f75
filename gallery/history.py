"""The studio's history: the team's 20 most recent tasks, and a cheap version of them.

The version is a token the page sends back with each poll. It names the listed tasks in order and
a short digest of each one's `updated_at`, so a poll can tell "nothing changed" (204), "these
rows changed" (only those rows are sent), or "the list itself changed" (the whole history).
"""

import hashlib
from dataclasses import dataclass

from django.db import connection
from django.db.models import Prefetch

from gallery.models import FINAL_STATES, GalleryImage, GenerationTask, Status

SIZE = 20
ONLY_MINE_KEY = "history_only_mine"


def _tasks(team, user, only_mine):
    tasks = GenerationTask.objects.for_team(team)
    return tasks.filter(created_by=user) if only_mine else tasks


def _digest(value, size=4):
    return hashlib.blake2b(str(value).encode(), digest_size=size).hexdigest()


@dataclass
class Version:
    """The listed tasks, newest first: their ids, a digest of each one's last change, and the
    counts the history's header shows."""

    only_mine: bool
    ids: list
    changes: list
    running: int = 0
    completed: int = 0

    @property
    def token(self):
        return f"{int(self.only_mine)}.{_digest(self.ids)}.{''.join(self.changes)}"

    def changed_since(self, token):
        """The ids of the rows that changed since `token`, or None when the list itself changed
        (a task came, went or moved) or the token is not one of ours."""
        mine, _, rest = (token or "").partition(".")
        list_digest, _, changes = rest.partition(".")
        if mine != str(int(self.only_mine)) or list_digest != _digest(self.ids) or len(changes) != 8 * len(self.ids):
            return None
        old = [changes[i : i + 8] for i in range(0, len(changes), 8)]
        return [pk for pk, before, now in zip(self.ids, old, self.changes) if before != now]


def version(team, user, only_mine):
    """The history's Version: one small query.

    Plain SQL read as the driver returns it: every poll runs this, and building the ORM query and
    converting its values cost six times the query itself (bench/poll.py). It must order exactly
    as `recent()` does.
    """
    sql = f"SELECT id, updated_at, status FROM {GenerationTask._meta.db_table} WHERE team_id = %s"
    params = [team.pk]
    if only_mine:
        sql += " AND created_by_id = %s"
        params.append(user.pk)
    sql += f" ORDER BY created_at DESC, id DESC LIMIT {SIZE}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return Version(
        only_mine=only_mine,
        ids=[str(pk).replace("-", "") for pk, _, _ in rows],
        changes=[_digest(updated_at) for _, updated_at, _ in rows],
        running=sum(status not in FINAL_STATES for _, _, status in rows),
        completed=sum(status == Status.COMPLETED for _, _, status in rows),
    )


@dataclass
class CompareGroup:
    """Tasks of one comparison (one prompt on several models), shown side by side."""

    id: object
    tasks: list

    @property
    def prompt(self):
        return self.tasks[0].prompt


@dataclass
class History:
    tasks: list
    version: Version
    only_mine: bool
    oob: bool = False  # rendered as an out-of-band swap (beside a submitted form)

    size = SIZE

    @property
    def entries(self):
        """The tasks in order, those of one comparison gathered in a CompareGroup (they were
        created together, so they are next to each other unless someone else's task came between)."""
        entries = []
        for task in self.tasks:
            last = entries[-1] if entries else None
            if task.compare_group and isinstance(last, CompareGroup) and last.id == task.compare_group:
                last.tasks.append(task)
            elif task.compare_group:
                entries.append(CompareGroup(task.compare_group, [task]))
            else:
                entries.append(task)
        return entries

    @property
    def running(self):
        return self.version.running

    @property
    def completed(self):
        return self.version.completed


def rows(team, user, only_mine, ids=None):
    """The tasks to show, with what a row needs; only those with the given ids when asked."""
    images = Prefetch("images", queryset=GalleryImage.objects.order_by("index"))
    tasks = _tasks(team, user, only_mine).select_related("created_by", "api_key").prefetch_related(images)
    if ids is not None:
        return list(tasks.filter(pk__in=ids).order_by("-created_at", "-id"))
    return list(tasks.recent(SIZE))


def load(team, user, only_mine):
    # The version is read before the tasks: a change in between makes the next poll re-render,
    # where the other order could leave a stale history behind an up-to-date version.
    token = version(team, user, only_mine)
    return History(tasks=rows(team, user, only_mine), version=token, only_mine=only_mine)

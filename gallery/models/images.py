"""The gallery: every stored image of a team, newest first, with keyset pages."""

import re
import unicodedata
import uuid
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import connections, models, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from gallery import options

from .tasks import GenerationTask, delete_stored_files
from .teams import Team


class ImageQuerySet(models.QuerySet):
    def for_team(self, team):
        return self.filter(team=team)

    def newest_first(self):
        return self.order_by("-created_at", "-id")

    def older_than(self, created_at, pk):
        """Images after (created_at, pk) in newest-first order. The plain `created_at <=` bound is
        what lets the (team, created_at, id) index start right at the cursor; the OR breaks ties."""
        return self.filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk), created_at__lte=created_at
        )

    def newer_than(self, created_at, pk):
        return self.filter(
            Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=pk), created_at__gte=created_at
        )

    def page(self, size, cursor=None):
        """(images, cursor of the next page or None): `size` images newest first, after `cursor`.

        Keyset pagination: the cost of a page does not depend on how deep it is."""
        found = self.newest_first()
        if cursor:
            found = found.older_than(*cursor)
        images = list(found[: size + 1])
        more = len(images) > size
        return images[:size], (images[size - 1].cursor if more else None)

    def neighbours(self, image):
        """(newer, older) images next to `image` in newest-first order; None at either end."""
        newer = self.newer_than(image.created_at, image.pk).order_by("created_at", "id").first()
        older = self.older_than(image.created_at, image.pk).newest_first().first()
        return newer, older

    def count_up_to(self, limit):
        """The number of images, counting no further than `limit`: a count is the one gallery
        query whose cost grows with the team's size, so it stops where a person stops caring."""
        return self[:limit].count()

    def favourites(self):
        return self.filter(favourite=True)

    def by_member(self, user_id):
        return self.filter(task__created_by_id=user_id)

    def with_ratio(self, ratio):
        """Images of tasks asked for this ratio ("auto" included), or "custom" pixel sizes."""
        if ratio == "custom":
            return self.filter(task__custom_width__isnull=False)
        return self.filter(task__size=ratio, task__custom_width__isnull=True)

    def with_model(self, model):
        return self.filter(task__model=model)

    def with_quality(self, quality):
        return self.filter(task__quality=quality, task__custom_width__isnull=True)

    def created_between(self, since=None, until=None):
        """Images made on the days from `since` to `until` (dates, both included, local time)."""
        found = self
        if since:
            found = found.filter(created_at__gte=_start_of_day(since))
        if until and until < date.max:
            found = found.filter(created_at__lt=_start_of_day(until + timedelta(days=1)))
        return found

    def matching(self, text):
        """Images whose prompt has every word of `text`, in any order, whatever the case: "red fox"
        and "Fox, red!" both find "A red fox". Punctuation only separates words, so nothing a
        person types is read as query syntax.

        Both databases match English word forms: "lighthouses" finds "lighthouse", "running"
        finds "runs". PostgreSQL by full-text search ('english') on the GIN index of 0004; SQLite
        by the FTS5 index of 0007, stemmed by its porter tokenizer since 0012. On SQLite a word may
        also be the start of a longer one: "lightho" finds "lighthouse". A prefix on PostgreSQL
        (`:*`) leaves the planner without an estimate, and a rare word then scanned all of a
        team's images (1.4 s at 100,000). Other databases: a contains match per word."""
        words = search_words(text)
        if not words:
            return self.none()
        vendor = connections[self.db].vendor
        if vendor == "postgresql":
            from django.contrib.postgres.search import SearchQuery, SearchVector

            query = SearchQuery(" ".join(words), config="english", search_type="plain")
            return self.annotate(prompt_search=SearchVector("task__prompt", config="english")).filter(
                prompt_search=query
            )
        if vendor == "sqlite":
            return self._matching_fts5(" AND ".join(f'"{word}"*' for word in words))
        return self.filter(*(Q(task__prompt__icontains=word) for word in words))

    def _matching_fts5(self, expression):
        # Which way round is cheaper depends on how many images match, which only the index knows:
        # a few hundred are looked up by id and sorted; more than that, and the team's images are
        # read newest first (the keyset index) and each checked against the matches, so a page
        # stops after its 48 hits instead of sorting thousands.
        matches = f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH %s"
        with connections[self.db].cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({matches} LIMIT %s)", [expression, MANY_MATCHES])
            many = cursor.fetchone()[0] >= MANY_MATCHES
        if not many:
            return self.filter(id__in=RawSQL(matches, [expression]))
        # The unary + keeps SQLite from looking up images by id: it must take the keyset index.
        table = self.model._meta.db_table
        return self.filter(RawSQL(f'+"{table}"."id" IN ({matches})', [expression], output_field=models.BooleanField()))

    def delete_with_files(self):
        """Deletes the rows, and their stored files (original and thumbnail) once the transaction
        commits: a rollback never leaves rows whose files are gone. Returns how many were deleted.
        The tasks stay, so the history still shows what was made and what it cost."""
        names = [name for pair in self.values_list("file", "thumbnail") for name in pair if name]
        deleted = self.delete()[1].get(GalleryImage._meta.label, 0)
        transaction.on_commit(lambda: delete_stored_files(names))
        return deleted


SEARCH_TABLE = "gallery_image_search"  # SQLite's FTS5 index of prompts, one row per image (0007)
MANY_MATCHES = 500
WORD = re.compile(r"[^\W_]+")
MAX_SEARCH_WORDS = 16


def search_words(text):
    """The words of a search, lower-cased: runs of letters and digits (anything else separates
    them), at most MAX_SEARCH_WORDS, without repeats."""
    words = WORD.findall(unicodedata.normalize("NFKC", text or "").lower())
    return list(dict.fromkeys(words))[:MAX_SEARCH_WORDS]


def _start_of_day(day):
    return timezone.make_aware(datetime.combine(day, time.min))


CURSOR_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def encode_cursor(created_at, pk):
    """An opaque page token: microseconds since 1970 and the id ("1738312345678901.42")."""
    return f"{(created_at - CURSOR_EPOCH) // timedelta(microseconds=1)}.{pk}"


def decode_cursor(text):
    """(created_at, id) from encode_cursor's token; ValueError for anything else."""
    micros, _, pk = (text or "").partition(".")
    if not (micros.isascii() and micros.isdigit() and pk.isascii() and pk.isdigit()):
        raise ValueError("not a page token")
    if len(micros) > 18 or len(pk) > 18:
        raise ValueError("not a page token")
    try:
        return CURSOR_EPOCH + timedelta(microseconds=int(micros)), int(pk)
    except OverflowError:
        raise ValueError("not a page token") from None


class GalleryImage(models.Model):
    # No index of its own: the keyset index below leads with the team (a second, team-only index
    # cost every insert and tempted PostgreSQL's planner into sorting a deep page instead).
    team = models.ForeignKey(Team, models.CASCADE, related_name="images", db_index=False)
    task = models.ForeignKey(GenerationTask, models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    file = models.FileField(max_length=255)
    thumbnail = models.FileField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    favourite = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # What the Team API's signed result links name: random, so a link tells nothing of row ids.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint("task", "index", name="image_task_index")]
        indexes = [models.Index(fields=["team", "created_at", "id"], name="image_keyset")]

    def __str__(self):
        return f"Image {self.index} of {self.task_id}"

    @property
    def content_type(self):
        return options.content_type(self.format)

    @property
    def cursor(self):
        """The page token for the images after this one (see ImageQuerySet.page)."""
        return encode_cursor(self.created_at, self.pk)

    def may_be_changed_by(self, membership):
        """Deleting follows the task's rule: the member who made it, or an owner or admin."""
        return self.task.may_be_changed_by(membership)

    def set_favourite(self, favourite):
        GalleryImage.objects.filter(pk=self.pk).update(favourite=favourite)
        self.favourite = favourite

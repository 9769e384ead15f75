import logging
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from gallery import catalog, failures, options

from .teams import Team

log = logging.getLogger(__name__)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Submitted"
    RUNNING = "running", "Running"
    STORING = "storing", "Saving images"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATES = {Status.COMPLETED, Status.FAILED, Status.CANCELLED}
# In a fixed order for SQL: a set's order changes from process to process, and PostgreSQL uses the
# partial index "task_unfinished" only for a query whose condition reads exactly as the index's.
FINAL_LIST = sorted(FINAL_STATES)

# Legal moves besides failing or cancelling, which any unfinished state may do. A retryable
# upstream failure sends a submitted or running task back to the queue for a new attempt.
TRANSITIONS = {
    # A provider that answers at once with its images goes straight to storing them.
    Status.QUEUED: {Status.SUBMITTED, Status.STORING},
    Status.SUBMITTED: {Status.RUNNING, Status.STORING, Status.QUEUED},
    Status.RUNNING: {Status.STORING, Status.QUEUED},
    Status.STORING: {Status.COMPLETED},
}
STATE_TIMESTAMPS = {
    Status.SUBMITTED: "submitted_at",
    Status.RUNNING: "running_at",
    Status.STORING: "storing_at",
    Status.COMPLETED: "finished_at",
    Status.FAILED: "finished_at",
    Status.CANCELLED: "finished_at",
}


class IllegalTransition(Exception):
    pass


class LeaseLost(Exception):
    """This worker's lease on a task expired and another worker took it."""


def can_move(current, new):
    if current in FINAL_STATES:
        return False
    return new in (Status.FAILED, Status.CANCELLED) or new in TRANSITIONS.get(current, ())


class TaskQuerySet(models.QuerySet):
    def for_team(self, team):
        return self.filter(team=team)

    def unfinished(self):
        return self.exclude(status__in=FINAL_LIST)

    def completed(self):
        return self.filter(status=Status.COMPLETED)

    def recent(self, limit=20):
        return self.order_by("-created_at", "-id")[:limit]

    def needing_work(self):
        """Unfinished tasks, and final ones still to be tidied up."""
        return self.filter(Q(tidy_pending=True) | ~Q(status__in=FINAL_LIST))

    def lease_free(self, now=None):
        now = now or timezone.now()
        return self.filter(Q(lease_until=None) | Q(lease_until__lt=now))


class GenerationTask(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, models.CASCADE, related_name="tasks")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="tasks"
    )
    retry_of = models.ForeignKey("self", models.SET_NULL, null=True, blank=True, related_name="+")

    # Inputs, as the user gave them and as normalised by the submit form.
    model = models.CharField(max_length=40, default="doubao-seedream-4.0", help_text="The Seedream model's id.")
    # Tasks of one comparison (one prompt on several models at once) share this.
    compare_group = models.UUIDField(null=True, blank=True, db_index=True)
    prompt = models.TextField()
    sent_prompt = models.TextField(help_text="The prompt as sent upstream.")
    ask_for_n = models.BooleanField(default=True)
    size = models.CharField(max_length=10, default="auto", help_text="Aspect ratio or auto.")
    quality = models.CharField(max_length=4, default="2K")  # "1.5K" is four
    custom_width = models.PositiveIntegerField(null=True, blank=True)
    custom_height = models.PositiveIntegerField(null=True, blank=True)
    n = models.PositiveSmallIntegerField(default=1)
    priority = models.CharField(max_length=10, default="standard")
    # Extras some models take (gallery/catalog.py): empty or False when not asked for.
    output_format = models.CharField(max_length=8, blank=True)
    web_search = models.BooleanField(default=False)
    watermark = models.BooleanField(default=False)
    background = models.CharField(max_length=12, blank=True)
    callback_url = models.URLField(max_length=2048, blank=True)
    # Tasks sent over the Team API: the key (its name shows in the history), the https
    # image_urls still to be fetched by the worker ([{"position", "url"}]), and the address the
    # client used, for the absolute links in callbacks when STUDIO_PUBLIC_URL is not set.
    api_key = models.ForeignKey("gallery.ApiKey", models.SET_NULL, null=True, blank=True, related_name="tasks")
    pending_image_urls = models.JSONField(default=list, blank=True)
    api_base_url = models.CharField(max_length=200, blank=True)
    submit_token = models.CharField(
        max_length=64, blank=True, help_text="The form's token and a digest of its inputs: one task per form sent."
    )

    # Upstream progress.
    provider = models.CharField(max_length=20)
    upstream_id = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    result_urls = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    retries = models.PositiveSmallIntegerField(default=0)
    # Set before each create call and cleared once the answer is recorded: a value found on a
    # queued task means a worker died mid-call, and the upstream may hold a task we never saw.
    create_started_at = models.DateTimeField(null=True, blank=True)
    uncertain_creates = models.PositiveSmallIntegerField(default=0)

    # Scheduling: the row is the source of truth, jobs only nudge it.
    next_check_at = models.DateTimeField(default=timezone.now)
    deadline_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    # Set with every final state; a worker holding the lease then settles the final cost and
    # removes what the task left upstream and in storage (never the web request: it holds no
    # lease, and a worker may be between saving an image's file and recording it).
    tidy_pending = models.BooleanField(default=False)
    storage_key = models.CharField(max_length=32, editable=False)

    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    storing_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    price_per_image = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    reserved_cost = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    final_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "team", "submit_token", condition=~Q(submit_token=""), name="task_submit_token"
            )
        ]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="task_team_recent"),
            models.Index(fields=["status", "next_check_at"], name="task_sweep"),
            models.Index(fields=["next_check_at"], condition=Q(tidy_pending=True), name="task_tidy"),
            # The sweeper's reads (overdue checks, deadlines): the few unfinished tasks among many
            # finished ones. "task_sweep" cannot serve a NOT IN on its leading column.
            models.Index(fields=["next_check_at"], condition=~Q(status__in=FINAL_LIST), name="task_unfinished"),
        ]

    def __str__(self):
        return f"{self.prompt[:40]} ({self.status})"

    def save(self, *args, **kwargs):
        if not self.storage_key:
            self.storage_key = secrets.token_hex(8)
        if not self.deadline_at:
            self.deadline_at = timezone.now() + timedelta(seconds=settings.TASK_DEADLINE_SECONDS)
        super().save(*args, **kwargs)

    @property
    def is_final(self):
        return self.status in FINAL_STATES

    def may_be_changed_by(self, membership):
        """Members cancel, retry and delete their own tasks; owners and admins anyone's (SPEC §1)."""
        return membership is not None and (membership.can_manage or self.created_by_id == membership.user_id)

    @property
    def failure(self):
        """What went wrong, in words for a person, with what to do next (gallery/failures.py)."""
        return failures.describe(self.error_code) if self.status == Status.FAILED else None

    @property
    def can_retry(self):
        """A failed task may be retried unless it was refused for its own content or settings:
        the same inputs would be refused again, so the person edits them instead (a remix)."""
        return self.status == Status.FAILED and self.failure.action != failures.EDIT

    @property
    def can_cancel(self):
        return not self.is_final

    @property
    def can_delete(self):
        return self.is_final

    @property
    def placeholders(self):
        """One empty tile per image still expected, while the task runs."""
        return range(max(self.n - len(self.images.all()), 0))

    @property
    def seedream(self):
        """The model's entry in gallery/catalog.py (None for a model this studio no longer knows)."""
        return catalog.get(self.model)

    @property
    def model_name(self):
        return self.seedream.name if self.seedream else self.model

    @property
    def extras(self):
        """The extras asked for, in words ("PNG · web search · transparent background")."""
        words = [self.output_format.upper()] if self.output_format else []
        words += ["web search"] * self.web_search + ["watermark"] * self.watermark
        words += [f"{self.background} background"] if self.background else []
        return " · ".join(words)

    # What a person chose for this task, by the studio form's field names: what Remix shows and
    # Retry submits again (each adds the size and references in its own form).
    CHOSEN = ("model", "prompt", "size", "quality", "n", "ask_for_n", "priority", "output_format", "web_search",
              "watermark", "background")

    @property
    def version(self):
        """A token that changes whenever the task does (the task page's poll sends it back)."""
        return f"{self.updated_at.timestamp():.6f}"

    def chosen(self):
        return {name: getattr(self, name) for name in self.CHOSEN}

    @property
    def shape(self):
        """The aspect ratio the images will have, for placeholders of the right shape."""
        if self.custom_width:
            return options.nearest_ratio(self.custom_width, self.custom_height)
        return "1:1" if self.size == "auto" else self.size

    @property
    def pixel_size(self):
        if self.custom_width:
            return (self.custom_width, self.custom_height)
        return options.pixel_size(self.size, self.quality)

    def move_to(self, new_status, *, on_move=None, **fields):
        """Moves to a new state if the move is legal and nobody moved the row meanwhile.

        Raises IllegalTransition for a move the lifecycle forbids; returns False when the row
        in the database is no longer in the state this object was loaded in (another process
        moved it), True when the move happened. `on_move(task)`, when given, runs in the same
        transaction once the row has moved: a write that commits with the move or not at all
        (the callback's outbox row, gallery.pipeline.finish).
        """
        if not can_move(self.status, new_status):
            raise IllegalTransition(f"A {self.status} task cannot become {new_status}.")
        now = timezone.now()
        fields["status"] = new_status
        fields["updated_at"] = now
        if stamp := STATE_TIMESTAMPS.get(new_status):
            fields.setdefault(stamp, now)
        if new_status in FINAL_STATES:
            fields["tidy_pending"] = True
        if on_move is None:
            moved = GenerationTask.objects.filter(pk=self.pk, status=self.status).update(**fields)
        else:
            with transaction.atomic():
                moved = GenerationTask.objects.filter(pk=self.pk, status=self.status).update(**fields)
                if moved:
                    on_move(self)
        if moved:
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(moved)

    def update_fields(self, **fields):
        """Records progress without a state change (and bumps the history's version)."""
        fields["updated_at"] = timezone.now()
        GenerationTask.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)

    def take_lease(self):
        """Claims the task for one worker until the lease expires; False if someone has it."""
        now = timezone.now()
        token = secrets.token_hex(8)
        until = now + timedelta(seconds=settings.TASK_LEASE_SECONDS)
        taken = (
            GenerationTask.objects.filter(pk=self.pk)
            .lease_free(now)
            .update(lease_until=until, lease_token=token)
        )
        if taken:
            self.lease_until, self.lease_token = until, token
        return bool(taken)

    def extend_lease(self):
        """Renews this worker's lease before a slow step; raises LeaseLost if another worker has
        taken the task meanwhile (this one must then stop before it pays for anything)."""
        until = timezone.now() + timedelta(seconds=settings.TASK_LEASE_SECONDS)
        kept = self.lease_token and GenerationTask.objects.filter(pk=self.pk, lease_token=self.lease_token).update(
            lease_until=until
        )
        if not kept:
            raise LeaseLost(f"Task {self.pk}: another worker took the lease")
        self.lease_until = until

    def reload(self):
        """Re-reads the task under this worker's lease (a cancel may have landed meanwhile). The
        lease stays this worker's own: raises LeaseLost if another worker holds it now, rather
        than taking on that worker's token with the row."""
        token = self.lease_token
        self.refresh_from_db()
        if self.lease_token != token:
            self.lease_token = token
            raise LeaseLost(f"Task {self.pk}: another worker took the lease")

    def release_lease(self):
        GenerationTask.objects.filter(pk=self.pk, lease_token=self.lease_token).update(
            lease_until=None, lease_token=""
        )

    def images_expected_name(self, index, suffix):
        """Deterministic storage names, so a crashed store is overwritten, not duplicated."""
        day = self.created_at.strftime("%Y/%m/%d")
        return f"results/{self.team_id}/{day}/{self.storage_key}-{index}{suffix}"


class StoredReference(models.Model):
    """A reference image the studio keeps: its file and the facts checked when it came in (a
    task's reference, or a file uploaded through the Team API's file service)."""

    file = models.FileField(max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        abstract = True


class ReferenceImage(StoredReference):
    task = models.ForeignKey(GenerationTask, models.CASCADE, related_name="references")
    team = models.ForeignKey(Team, models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()
    upstream_file_id = models.CharField(max_length=200, blank=True)
    upstream_url = models.URLField(max_length=2048, blank=True)

    class Meta(StoredReference.Meta):
        ordering = ["position"]
        constraints = [models.UniqueConstraint("task", "position", name="reference_position")]

    def __str__(self):
        return f"Reference {self.position} of {self.task_id}"


def delete_stored_files(names):
    """Deletes stored files, logging (never raising) what storage refuses: this often runs after a
    commit, where an exception would turn a finished request into a 500. A file left behind is
    found by the orphan-file report."""
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            log.warning("Could not delete %s from storage", name, exc_info=True)


class WorkerHeartbeat(models.Model):
    """Each worker process writes here; a RUNNING job whose worker is silent was orphaned."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.hostname}:{self.pid}"

"""The task workflow: submit, follow, store, finish. It crosses the database, upstream HTTP and
storage, so it lives here rather than on a model.

The GenerationTask row is the source of truth and jobs only nudge it: `advance` takes the task's
lease, does the next step for its state, records the result and schedules the next check. Every
step is idempotent, no network call happens inside a transaction, and the sweeper re-enqueues
any task whose job was lost, so a worker killed at any point loses nothing.
"""

import ctypes
import hashlib
import logging
import os
import platform
import random
import secrets
import tempfile
import threading
import uuid
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from gallery import budgets, catalog, logs, options, routing, webhooks
from gallery.images.decode import (
    ImageInfo,
    InvalidImage,
    TooLarge,
    check_with_thumbnail,
    inspect_image,
    prepare_for_upstream,
    read_capped,
)
from gallery.models import (
    FINAL_STATES,
    ApiFile,
    GalleryImage,
    GenerationTask,
    LeaseLost,
    ReferenceImage,
    Status,
    Team,
)
from gallery.models.tasks import delete_stored_files
from gallery.offers import price_per_image
from gallery.providers import GenerationRequest, ProviderError
from gallery.routing import get_provider

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A passing problem (network, full disk): the step runs again at the next check."""


# Submit ---------------------------------------------------------------------------------------


def submit(team, user, cleaned, retry_of=None):
    """One task on cleaned["model"] (see submit_all)."""
    return submit_all(team, user, {**cleaned, "compare": []}, retry_of)[0]


def submit_all(team, user, cleaned, retry_of=None):
    """Creates the tasks of one submission, one, or one per compared model (grouped), and
    enqueues them after commit. Returns them in the order the models were picked.

    Files are written first, outside the transaction (a long write would hold SQLite's write lock
    and stall the worker); the rows of every task are then created in one short transaction, and
    if they are not committed the files are deleted again: a comparison is made whole or not at
    all. The same form sent twice with the same inputs (a double click) gives the first
    submission's tasks; sent again with other inputs, they are new. Raises StorageUnavailable
    when the files cannot be saved, ModelUnavailable when no configured provider serves a model
    (before anything is written), and BudgetExceeded when the reserved cost of all its tasks does
    not fit what is left of the team's or the member's budget (nothing is kept).
    """
    models = list(cleaned.get("compare") or [cleaned.get("model") or settings.DEFAULT_MODEL])
    # Created last model first: the history lists newest first, so they show in the picked order.
    asks = [{**cleaned, "model": model} for model in reversed(models)]
    token = cleaned.get("submit_token") or ""
    tokens = [f"{token}:{inputs_digest(ask)}" if token else "" for ask in asks]
    if token and (existing := GenerationTask.objects.filter(team=team, submit_token=tokens[0]).first()):
        return submitted_with(existing)
    providers = [provider_for(ask["model"], ask["quality"]) for ask in asks]
    reserved = sum(price_per_image(provider, ask["model"], ask["quality"]) * images_asked(ask)
                   for ask, provider in zip(asks, providers))
    group = uuid.uuid4() if len(asks) > 1 else None
    created_at = timezone.now()
    stored = []
    try:
        for ask in asks:
            stored.append(store_references(team, created_at, ask["references"]))
        with transaction.atomic():
            budgets.reserve(team, user, reserved)
            tasks = [
                create_task(team, user, ask, created_at + timedelta(microseconds=i), provider,
                            submit_token=task_token, reference_names=names, retry_of=retry_of, compare_group=group)
                for i, (ask, task_token, provider, names) in enumerate(zip(asks, tokens, providers, stored))
            ]
    except BaseException as e:
        delete_stored_files([name for names in stored for name in names])
        if token and isinstance(e, IntegrityError):
            # Two copies of one form raced; the first one's tasks are the answer to both.
            return submitted_with(GenerationTask.objects.get(team=team, submit_token=tokens[0]))
        raise
    return tasks[::-1]


def submitted_with(task):
    """The tasks of an earlier submission: the task, or its whole comparison in picked order."""
    if not task.compare_group:
        return [task]
    return list(GenerationTask.objects.filter(team=task.team, compare_group=task.compare_group)
                .order_by("-created_at", "-id"))


def provider_for(model, quality):
    """The provider a new task of `model` is priced for; ModelUnavailable when none serves it."""
    provider = routing.first_choice(model, quality)
    if provider is None:
        raise ModelUnavailable(catalog.MODELS[model].name if model in catalog.MODELS else model)
    return provider


def create_task(team, user, cleaned, created_at, provider, submit_token, reference_names, **links):
    """The task's row and its references' rows (inside the caller's transaction); enqueued after commit."""
    model = cleaned["model"]
    price = price_per_image(provider, model, cleaned["quality"])
    n = images_asked(cleaned)
    custom = cleaned.get("custom_size")
    task = GenerationTask.objects.create(
        submit_token=submit_token,
        team=team,
        created_by=user,
        created_at=created_at,
        model=model,
        prompt=cleaned["prompt"],
        sent_prompt=options.sent_prompt(cleaned["prompt"], n, cleaned["ask_for_n"]),
        ask_for_n=cleaned["ask_for_n"],
        size=cleaned["size"],
        quality=cleaned["quality"],
        custom_width=custom[0] if custom else None,
        custom_height=custom[1] if custom else None,
        n=n,
        priority=cleaned["priority"],
        output_format=cleaned.get("output_format") or "",
        web_search=bool(cleaned.get("web_search")),
        watermark=bool(cleaned.get("watermark")),
        background=cleaned.get("background") or "",
        provider=provider,
        price_per_image=price,
        reserved_cost=price * n,
        **links,
        **cleaned.get("task_fields", {}),  # the Team API's own fields (gallery/api/generations.py)
    )
    ReferenceImage.objects.bulk_create(
        ReferenceImage(
            task=task,
            team=team,
            position=getattr(ref, "position", position),  # API: image_urls fetched later keep their place
            file=name,
            original_name=ref.name[:255],
            format=ref.info.format,
            width=ref.info.width,
            height=ref.info.height,
            bytes=ref.info.bytes,
            sha256=ref.info.sha256,
        )
        for position, (ref, name) in enumerate(zip(cleaned["references"], reference_names))
    )
    budgets.record(task)
    transaction.on_commit(lambda: enqueue(task.pk))
    return task


def images_asked(cleaned):
    return cleaned["n"] if catalog.MODELS[cleaned["model"]].sends_n else 1  # 5.0 Pro: one image per task


class ModelUnavailable(Exception):
    """No configured provider has a price for the model."""


class StorageUnavailable(Exception):
    """The studio's file storage refused a write (a full disk, object storage down)."""


def store_references(team, created_at, references):
    """Saves each reference's bytes under a new random name; returns the names. On a storage
    failure, what was saved is deleted again and StorageUnavailable is raised."""
    stored = []
    try:
        for ref in references:
            stored.append(default_storage.save(reference_name(team, created_at, ref.info.format), ContentFile(ref.data)))
    except OSError as e:
        delete_stored_files(stored)
        log.exception("References not saved")
        raise StorageUnavailable(
            "The studio could not save your reference images just now (its storage refused them). "
            "Nothing was created; try again in a moment."
        ) from e
    return stored


def inputs_digest(cleaned):
    """A digest of everything a submission asks for: the same form sent twice with other inputs
    is another task, not a double click."""
    parts = [
        cleaned.get("model") or "", cleaned["prompt"], cleaned["size"], cleaned["quality"],
        str(cleaned.get("custom_size")), str(cleaned["n"]), str(cleaned["ask_for_n"]), cleaned["priority"],
        *(str(cleaned.get(extra) or "") for extra in ("output_format", "web_search", "watermark", "background")),
        *(ref.info.sha256 for ref in cleaned["references"]),
    ]
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()


def retry(task, user):
    """A failed task's retry is a new task with the same inputs (SPEC §8)."""
    try:
        refs = []
        for ref in task.references.all():
            data = _read(ref.file)
            refs.append(_StoredReference(ref.original_name, data, inspect_image(data)))
    except (OSError, InvalidImage) as e:
        raise StorageUnavailable(
            "A reference image of this task can no longer be read from storage, so it cannot be "
            "retried as it was. Remix it instead and add the references again."
        ) from e
    cleaned = {
        **task.chosen(),
        "custom_size": (task.custom_width, task.custom_height) if task.custom_width else None,
        "references": refs,
    }
    return submit(task.team, user, cleaned, retry_of=task)


class _StoredReference:
    def __init__(self, name, data, info):
        self.name, self.data, self.info = name, data, info


def _read(field):
    with field.open("rb") as f:
        return f.read()


def reference_name(team, created_at, image_format):
    day = created_at.strftime("%Y/%m/%d")
    ext = options.extension(image_format)
    return f"references/{team.pk}/{day}/{secrets.token_hex(12)}{ext}"


def enqueue(task_id, run_after=None):
    """Nudges a worker to advance the task. Never raises: the task row is the record, and a nudge
    that could not be queued (Redis down, a broken connection after commit) is made again by the
    sweeper once the task's check is overdue."""
    # The job loop: the job (gallery/tasks.py) runs advance, which enqueues the next check.
    from gallery.tasks import advance

    job = advance.using(run_after=run_after) if run_after else advance
    try:
        job.enqueue(str(task_id))
    except Exception:
        log.exception("Task %s: not queued; the sweeper will queue it again", task_id)


# Advance --------------------------------------------------------------------------------------


def advance(task_id):
    """Does the next step of one task, if no other worker is on it, and schedules the next. A
    final task that still has tidying to do (see GenerationTask.tidy_pending) is tidied."""
    task = GenerationTask.objects.filter(pk=task_id).first()
    if task is None or (task.is_final and not task.tidy_pending) or not task.take_lease():
        return
    with logs.working_on(task.pk):
        try:
            task.reload()
            if not task.is_final:
                step(task)
                task.reload()  # a cancel may have landed while this worker was busy
            if task.is_final and task.tidy_pending:
                tidy(task)
        except LeaseLost:
            log.warning("Task %s: its lease expired and another worker took it over", task.pk)
            return
        except Exception as e:  # a bug or a broken database must not strand the task
            log.exception("Task %s: step failed", task.pk)
            fields = {"next_check_at": timezone.now() + timedelta(seconds=10)}
            if not task.is_final:
                fields["error_message"] = _plain(e)
            task.update_fields(**fields)
        finally:
            task.release_lease()
    if not task.is_final:
        schedule(task)


def wake(task_id):
    """Checks an unfinished task now (an upstream said something changed); no-op otherwise."""
    woken = (
        GenerationTask.objects.unfinished()
        .lease_free()
        .filter(pk=task_id, status__in=[Status.SUBMITTED, Status.RUNNING])
        .update(next_check_at=timezone.now())
    )
    if woken:
        enqueue(task_id)
    return bool(woken)


def schedule(task):
    when = task.next_check_at
    enqueue(task.pk, run_after=when if when > timezone.now() else None)


def step(task):
    if timezone.now() >= task.deadline_at:
        finish_at_deadline(task)
    elif task.status == Status.QUEUED:
        if task.pending_image_urls:
            from gallery.api.fetch import fetch_image_urls

            if not fetch_image_urls(task):  # failed, or a passing problem to try again later
                return
        create_upstream(task)
    elif task.status in (Status.SUBMITTED, Status.RUNNING):
        follow(task)
    if task.status == Status.STORING:
        store_results(task)


def create_upstream(task):
    if task.create_started_at:
        # A worker died during a create call: the upstream may hold a task we never heard of.
        # Submit again, but only once, so a crash loop cannot keep paying for lost tasks.
        if task.uncertain_creates >= 1:
            fail(task, "lost_contact", "We lost contact with the provider twice while sending this task, so it was not sent again. Retry it when you are ready.")
            return
        log.warning("Task %s: earlier create may have reached the provider; resubmitting once", task.pk)
        task.update_fields(uncertain_creates=task.uncertain_creates + 1)
    try:
        # The router tries the cheapest healthy provider first and fails over to the next.
        _, created = routing.create(task.pk, lambda provider: create_at(task, provider), task.model, task.quality)
    except ProviderError as e:
        task.update_fields(create_started_at=None)
        handle_error(task, e)
        return
    except budgets.BudgetExceeded as e:
        fail(task, "budget_exceeded", f"The provider priced for this task failed, and the next one costs more. {e.message}")
        return
    now = timezone.now()
    fields = dict(
        upstream_id=created.id,
        create_started_at=None,
        submitted_at=now,
        deadline_at=now + timedelta(seconds=settings.TASK_DEADLINE_SECONDS),
    )
    if created.status == "completed" and created.results:
        # A synchronous provider answered with its images: keep their links and store them now
        # (they expire), in one move, so no crash can lose them between two writes.
        task.move_to(Status.STORING, result_urls=created.results, progress=100, next_check_at=now, **fields)
    else:
        first_check = now + timedelta(seconds=settings.TASK_FIRST_CHECK_SECONDS)
        task.move_to(Status.SUBMITTED, progress=created.progress, next_check_at=first_check, **fields)


def create_at(task, provider):
    """One create attempt at one provider; the task records who runs it and at what price."""
    if provider.name != task.provider:
        forget_references(task)
        budgets.reprice(task, provider.name, price_per_image(provider.name, task.model, task.quality))
    urls = deliver_references(task, provider)
    task.extend_lease()  # the create call must end inside the lease, or a second worker may pay again
    task.update_fields(create_started_at=timezone.now())
    try:
        return routing.call(provider.name, lambda: provider.create(generation_request(task, urls)))
    except ProviderError as e:
        # A call that timed out may have reached the provider, which may be making images we will
        # never hear of: recorded on the task, like a create cut short by a crash.
        uncertain = task.uncertain_creates + (e.code == "timeout")
        task.update_fields(create_started_at=None, uncertain_creates=uncertain)
        raise


def generation_request(task, reference_urls):
    """What the provider is asked for, as plain data."""
    references = list(task.references.all())
    return GenerationRequest(
        client_ref=str(task.pk),
        prompt=task.sent_prompt,
        model=task.model,
        size=task.size,
        quality=task.quality,
        n=task.n,
        priority=task.priority,
        custom_size=(task.custom_width, task.custom_height) if task.custom_width else None,
        reference_urls=tuple(reference_urls),
        reference_sizes=tuple((ref.width, ref.height) for ref in references),
        callback_url=callback_url(task.pk) if settings.STUDIO_PUBLIC_URL.startswith("https://") else "",
        output_format=task.output_format,
        web_search=task.web_search,
        watermark=task.watermark,
        background=task.background,
    )


def callback_token(task_id):
    """Unguessable per task, and needs no stored secret: the callback endpoint recomputes it
    (with the SECRET_KEY every machine shares)."""
    return salted_hmac("gallery.evolink.callback", str(task_id), algorithm="sha256").hexdigest()[:32]


def callback_url(task_id):
    # The callback only wakes the task up; the studio re-reads the task with GET (SPEC §7).
    return f"{settings.STUDIO_PUBLIC_URL}/upstream/evolink/{task_id}/{callback_token(task_id)}/"


def forget_references(task):
    """Failing over: references sent to the previous provider are no use to the next one."""
    delete_upstream_references(task, forget=True)


def delete_upstream_references(task, forget=False):
    """Deletes the task's reference files at its provider (they expire there, and an account
    holds only so many). `forget` also drops their URLs, for a resend to another provider."""
    try:
        provider = get_provider(task.provider)
    except ProviderError:
        provider = None
    for ref in task.references.exclude(upstream_file_id="", upstream_url=""):
        deleted = not ref.upstream_file_id
        try:
            if provider and ref.upstream_file_id:
                task.extend_lease()
                routing.call(provider.name, lambda: provider.delete_reference(ref.upstream_file_id))
                deleted = True
        except ProviderError:
            log.warning("Task %s: upstream file %s not deleted", task.pk, ref.upstream_file_id)
        if forget:
            ReferenceImage.objects.filter(pk=ref.pk).update(upstream_file_id="", upstream_url="")
        elif deleted:
            ReferenceImage.objects.filter(pk=ref.pk).update(upstream_file_id="")


def deliver_references(task, provider):
    """Sends each reference not sent yet: WEBP as lossless PNG, metadata stripped."""
    urls = []
    for ref in task.references.all():
        if not ref.upstream_url:
            task.extend_lease()  # ten slow uploads can outlast one lease
            data, image_format = prepare_for_upstream(_read(ref.file))
            file_id, url = routing.call(provider.name, lambda: provider.deliver_reference(data, image_format))
            keep_if_still_leased(task, provider, file_id)
            ref.upstream_file_id, ref.upstream_url = file_id, url
            ref.save(update_fields=["upstream_file_id", "upstream_url"])
        urls.append(ref.upstream_url)
    return urls


def keep_if_still_leased(task, provider, file_id):
    """After an upload that outlasted the lease, the worker that took the task over sends the
    reference itself: this one's copy is deleted again (it would be left upstream, or for the
    sandbox in storage, with no row naming it) and this worker stops."""
    try:
        task.extend_lease()
    except LeaseLost:
        try:
            provider.delete_reference(file_id)
        except ProviderError:
            log.warning("Task %s: upstream file %s not deleted after losing the lease", task.pk, file_id)
        raise


def follow(task):
    provider = get_provider_or_fail(task)
    if provider is None:
        return
    try:
        task.extend_lease()
        upstream = routing.call(provider.name, lambda: provider.get(task.upstream_id))
    except ProviderError as e:
        if e.retryable:
            task.update_fields(next_check_at=backoff(task, e.retry_after, attempt=2))
        else:
            fail(task, e.code, e.message)
        return
    now = timezone.now()
    if upstream.status == "completed":
        if not upstream.results:
            handle_error(task, ProviderError.from_task_code("generation_failed_no_content"))
            return
        task.move_to(Status.STORING, result_urls=upstream.results, progress=100, next_check_at=now)
    elif upstream.status == "failed":
        handle_error(task, upstream.error or ProviderError.from_task_code(""))
    else:
        next_check = now + timedelta(seconds=settings.TASK_CHECK_SECONDS * random.uniform(1, 5 / 3))
        if upstream.status == "processing" and task.status == Status.SUBMITTED:
            task.move_to(Status.RUNNING, progress=upstream.progress, next_check_at=next_check)
        else:
            task.update_fields(progress=upstream.progress, next_check_at=next_check)


def handle_error(task, error):
    """Retryable errors go back to the queue with backoff (bounded); others end the task. Waiting
    for resting providers is not a try: it uses up no retry."""
    if error.code == routing.RESTING:
        task.update_fields(next_check_at=backoff(task, error.retry_after, attempt=1), error_code=error.code,
                           error_message=f"{error.message} Waiting…")
        return
    if not error.retryable or task.retries >= settings.TASK_MAX_RETRIES:
        message = error.message
        if error.retryable:
            message = f"{message} We tried {task.retries + 1} times; please retry later."
        fail(task, error.code, message)
        return
    fields = dict(
        retries=task.retries + 1,
        next_check_at=backoff(task, error.retry_after),
        error_code=error.code,
        error_message=f"{error.message} Trying again…",
    )
    if task.status == Status.QUEUED:
        task.update_fields(**fields)
    else:
        task.move_to(Status.QUEUED, upstream_id="", progress=0, result_urls=[], **fields)


def backoff(task, retry_after=None, attempt=None):
    """Exponential backoff with jitter; an upstream's Retry-After wins when it is longer."""
    attempt = attempt or task.retries + 1
    delay = min(60.0, settings.TASK_CHECK_SECONDS * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
    delay = max(delay, float(retry_after or 0))
    return timezone.now() + timedelta(seconds=delay)


def get_provider_or_fail(task):
    try:
        return get_provider(task.provider)
    except ProviderError as e:
        fail(task, e.code, e.message)
        return None


# Store ----------------------------------------------------------------------------------------


def store_results(task):
    """Downloads and stores each result not stored yet, several at once, then completes the task.

    Two stages, each on threads of its own: up to STORE_PARALLEL downloads at once (a download
    holds one chunk in memory and streams to a temporary file), and as many checks as the machine
    has CPUs (one decode that proves the image and makes its thumbnail, then the two files saved),
    bounded apart by memory (DECODE_MEMORY_BYTES). A download hands its file to a check and makes
    room for the next download, so the link stays busy while earlier results decode.

    This thread, which holds the lease, is the only one that renews it and the only one that uses
    the database: it opens each result (a provider may read the database there), writes each row
    as its files are saved, and renews the lease whenever a stage ends and at least every third of
    the lease meanwhile. As one at a time: a final problem with one image is recorded and the
    others go on; a passing one (network, full disk) starts no further download, lets those under
    way finish and leaves the rest to the next check. If the lease is lost, downloads stop at
    their next chunk and nothing more is saved.
    """
    provider = get_provider(task.provider)
    stored = set(task.images.values_list("index", flat=True))
    waiting = [(index, url) for index, url in enumerate(task.result_urls) if index not in stored]
    errors, retry_message = {}, None
    downloading, checking = {}, {}
    stop = threading.Event()
    checks = check_pool()
    with ThreadPoolExecutor(settings.STORE_PARALLEL, thread_name_prefix=f"download-{task.pk}") as downloads:
        try:
            while downloading or checking or (waiting and retry_message is None):
                task.extend_lease()
                while waiting and retry_message is None and len(downloading) < settings.STORE_PARALLEL:
                    index, url = waiting.pop(0)
                    downloading[_start_download(downloads, provider, url, stop)] = index
                done, _ = futures.wait([*downloading, *checking], timeout=settings.TASK_LEASE_SECONDS / 3,
                                       return_when=futures.FIRST_COMPLETED)
                for future in done:
                    stage = downloading if future in downloading else checking
                    index = stage.pop(future)
                    try:
                        if stage is downloading:
                            checking[checks.submit(_in_thread, check_result, task, index, future.result(), stop)] = index
                        else:
                            # Checks can finish together: each row asks for the lease first, so a
                            # lease lost meanwhile writes no more rows.
                            task.extend_lease()
                            record_result(task, future.result())
                    except RetryLater as e:
                        retry_message = retry_message or str(e)
                    except (ProviderError, InvalidImage, TooLarge) as e:
                        errors[index] = _plain(e)
                        log.warning("Task %s: result %s not stored: %s", task.pk, index, e)
        finally:
            stop.set()  # a lost lease or a bug: the threads still running stop at their next chunk
            for future in downloading:  # files downloaded for no check
                with suppress(Exception):
                    future.result().close()
            futures.wait(checking)
    if retry_message:
        task.update_fields(next_check_at=backoff(task, attempt=2), error_message=retry_message)
        return
    complete(task, errors)


# Checks at once: one decode per CPU keeps them busy; more would only wait for one.
CHECK_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_check_pool, _check_pool_made = None, threading.Lock()


def check_pool():
    """The worker process's check threads, made once and kept: each thread keeps what storage
    makes per thread (django-storages' S3 client: 0.1–0.2 s and ~13 MB each) from task to task."""
    global _check_pool
    with _check_pool_made:
        if _check_pool is None:
            _check_pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="check")
        return _check_pool


def _forget_check_pool():  # a forked child has none of its parent's threads (nor their lock)
    global _check_pool, _check_pool_made
    _check_pool, _check_pool_made = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_check_pool)


def _start_download(pool, provider, url, stop):
    try:
        opened = provider.open_result(url)
    except ProviderError as e:  # reported like a failed download, through the same future
        failed = futures.Future()
        failed.set_exception(_retry_later_if_passing(e))
        return failed
    return pool.submit(_in_thread, download_result, opened, stop)


def _in_thread(function, *args):
    try:
        return function(*args)
    finally:
        # Nothing here should have used the database; if something did, its connection (one per
        # thread) must not outlive the thread.
        connections.close_all()


def store_one(task, provider, index, url):
    """Stores one result on this thread (what store_results does for each, one at a time)."""
    if task.images.filter(index=index).exists():
        return
    try:
        opened = provider.open_result(url)
    except ProviderError as e:
        raise _retry_later_if_passing(e) from e
    record_result(task, check_result(task, index, download_result(opened)))


class Stopped(Exception):
    """The store was abandoned (its lease was lost) while this result was under way."""


@dataclass(frozen=True)
class FetchedResult:
    index: int
    name: str
    thumbnail: str
    info: ImageInfo


def download_result(opened, stop=None):
    """Downloads one result (`opened`: what provider.open_result returned) to a temporary file:
    a _Download, with the `size` and `sha256` read on the way. No database access: this runs on
    the store's threads. Raises RetryLater for passing problems, as store_results expects."""
    download = _Download()
    try:
        _raise_if(stop)
        try:
            with opened as chunks:
                _, download.size, download.sha256 = read_capped(
                    _unless(stop, chunks), settings.MAX_RESULT_BYTES, into=download.file
                )
        except ProviderError as e:
            raise _retry_later_if_passing(e) from e
    except BaseException:
        download.close()
        raise
    return download


def check_result(task, index, download, stop=None):
    """Checks a downloaded result, makes its thumbnail and saves both under the task's
    deterministic names (the download is moved into place on local disk, not copied). No
    database access: this runs on the store's threads."""
    try:
        _raise_if(stop)
        info, thumbnail = check_with_thumbnail(download.file, download.size, download.sha256,
                                               reserve=DECODE_BUDGET.reserve)
        _raise_if(stop)
        download.file.seek(0)
        name = task.images_expected_name(index, options.extension(info.format))
        thumb_name = task.images_expected_name(index, ".thumb.webp")
        try:
            save_exactly(name, download)
            save_exactly(thumb_name, ContentFile(thumbnail))
        except OSError as e:
            raise RetryLater(f"Could not save the images ({e.strerror or e}). Retrying…") from e
    finally:
        download.close()
    return FetchedResult(index, name, thumb_name, info)


def record_result(task, fetched):
    """The row of a result whose files are saved; on the thread that holds the task's lease."""
    info = fetched.info
    try:
        with transaction.atomic():
            GalleryImage.objects.create(
                team_id=task.team_id,
                task=task,
                index=fetched.index,
                file=fetched.name,
                thumbnail=fetched.thumbnail,
                width=info.width,
                height=info.height,
                format=info.format,
                bytes=info.bytes,
                sha256=info.sha256,
            )
    except IntegrityError:
        # Another worker stored this very image meanwhile, under the same names: one row stays.
        pass
    task.update_fields()  # the history shows images as they arrive


def _retry_later_if_passing(error):
    if isinstance(error, ProviderError) and error.retryable:
        return RetryLater(error.message)
    return error


def _raise_if(stop):
    if stop is not None and stop.is_set():
        raise Stopped()


def _unless(stop, chunks):
    for chunk in chunks:
        _raise_if(stop)
        yield chunk


class _Download(File):
    """A result as it downloads: a named temporary file, which local storage moves into place,
    with the size and SHA-256 of what was read into it."""

    def __init__(self):
        file = tempfile.NamedTemporaryFile(suffix=".download", dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
        super().__init__(file)
        self.size, self.sha256 = 0, ""

    def temporary_file_path(self):
        return self.file.name

    def close(self):
        try:
            self.file.close()
        except FileNotFoundError:
            pass  # moved into storage: nothing left to delete


# Decoding a 4K PNG holds up to 64 MB of pixels (4096 × 4096 is the most any model makes, 21:9
# included); a 4K JPEG, decoded at 1/4 scale for its thumbnail, 4 MB. One PNG and a few JPEGs at
# once keep a worker within the 150 MB the store may add to it; two PNGs at once measured 150–160 MB
# (bench/store.py). The threads of one process share this budget, whatever task they store.
DECODE_MEMORY_BYTES = 96 * 1024 * 1024


def _return_freed_pixels_to_the_system():
    """Pillow holds pixels in 16 MB blocks. glibc serves the first one with mmap and then, seeing
    it freed, raises its mmap threshold, so every later block comes from the heap of the thread
    that decodes and stays there when freed: four store threads kept ~4 × 64 MB resident (271 MB
    for 15 PNGs). A fixed threshold returns each block to the system when it is freed."""
    if platform.libc_ver()[0] != "glibc":
        return
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024)


M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_return_freed_pixels_to_the_system()


class MemoryBudget:
    """Bytes that decodes may hold at once: reserve(n) waits until n more fit. A decode larger
    than the whole budget runs alone, so nothing waits forever."""

    def __init__(self, capacity):
        self.capacity, self.used = capacity, 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, n):
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + n <= self.capacity)
            self.used += n
        try:
            yield
        finally:
            with self._changed:
                self.used -= n
                self._changed.notify_all()


DECODE_BUDGET = MemoryBudget(DECODE_MEMORY_BYTES)


def save_exactly(name, content):
    """Saves under this exact name, replacing what a crashed earlier attempt left there. A storage
    that overwrites in place (S3 with file_overwrite) needs no look first: 30 round trips a task."""
    if not _overwrites(default_storage) and default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, content)
    if saved != name:
        default_storage.delete(saved)
        raise OSError(f"storage renamed {name} to {saved}")


def _overwrites(storage):
    return bool(getattr(storage, "file_overwrite", False) or getattr(storage, "allow_overwrite", False))


def complete(task, errors):
    if task.status != Status.STORING:
        return
    count = task.images.count()
    if count == 0:
        fail(task, "download_failed", "The provider finished, but none of its images could be downloaded. Retry the task.")
        return
    message = ""
    if errors:
        message = f"{len(errors)} of {len(task.result_urls)} images could not be downloaded from the provider."
    if finish(task, Status.COMPLETED, progress=100, error_message=message):
        tidy(task)


# Finish ---------------------------------------------------------------------------------------


def finish(task, status, **fields):
    """Moves the task to a final state (GenerationTask.move_to). For an API task with a
    callback_url, the callback's outbox row is written in the same transaction: both commit or
    neither does, so a final task always has its callback. False if another process moved the
    task first."""
    if not task.callback_url:
        return task.move_to(status, **fields)
    return task.move_to(status, on_move=webhooks.record_final, **fields)


def fail(task, code, message):
    """Ends the task as failed; only where the caller holds the task's lease."""
    if not task.is_final and finish(task, Status.FAILED, error_code=code or "", error_message=message):
        tidy(task)


def finish_at_deadline(task):
    """Past the deadline: keep whatever was stored, otherwise fail with "timed out"."""
    if task.status == Status.STORING and task.images.exists():
        complete(task, {})
    else:
        detail = f" Last problem: {task.error_message}" if task.error_message else ""
        fail(task, "timed_out", f"Timed out: the task did not finish within {settings.TASK_DEADLINE_SECONDS // 60} minutes.{detail}")


def cancel(task):
    """Stops following the task (no upstream cancel endpoint exists). A state change only: this
    runs in a web request, without the task's lease, so the tidying (final cost, upstream
    reference files, unrecorded image files) is left to a worker. Images stored or still
    arriving are kept. Returns False if the task had already finished."""
    for _ in range(3):  # the worker may move the task between our read and our update
        if task.is_final:
            return False
        if finish(task, Status.CANCELLED):
            enqueue(task.pk)
            return True
        task.refresh_from_db()
    return False


def delete(task):
    """Deletes a final task with its images and references; the files go once the rows are gone.
    Returns False (nothing deleted) while a worker still holds the task or has tidying to do."""
    names = [name for image in task.images.all() for name in (image.file.name, image.thumbnail.name)]
    names += [ref.file.name for ref in task.references.all()]
    with transaction.atomic():
        deleted, _ = (
            GenerationTask.objects.filter(pk=task.pk, status__in=FINAL_STATES, tidy_pending=False)
            .lease_free()
            .delete()
        )
        if deleted:
            transaction.on_commit(lambda: delete_stored_files(names))
    return bool(deleted)


class TeamBusy(Exception):
    """The team still has work a worker holds or will pick up: deleting it now would pull rows
    from under the worker and leave files behind."""


def delete_team(team):
    """Deletes the team with everything it owns (members, invites, keys, tasks, images,
    references, API files); the files go once the rows are gone. The ledger stays: its charges
    lose their team and task but keep what was spent. Raises TeamBusy while any task is
    unfinished, being tidied or held by a worker (as delete(task) would refuse it)."""
    with transaction.atomic():
        # The team row's lock is the one submissions take (budgets.reserve): a task submitted
        # meanwhile is either seen below, or its submission fails once the team is gone.
        Team.objects.select_for_update().filter(pk=team.pk).exists()
        held = Q(lease_until__gte=timezone.now())
        busy = GenerationTask.objects.filter(team=team).filter(
            ~Q(status__in=FINAL_STATES) | Q(tidy_pending=True) | held
        ).count()
        if busy:
            raise TeamBusy(busy)
        images = GalleryImage.objects.filter(team=team).values_list("file", "thumbnail")
        names = [name for pair in images for name in pair]
        names += ReferenceImage.objects.filter(team=team).values_list("file", flat=True)
        names += ApiFile.objects.filter(team=team).values_list("file", flat=True)
        Team.objects.filter(pk=team.pk).delete()
        transaction.on_commit(lambda: delete_stored_files([name for name in names if name]))


def tidy(task):
    """After a final state, under the task's lease: settles the final cost (images kept × price),
    deletes the task's reference files at the provider and any file of an image that was saved
    but never recorded. Problems are logged; tidying is done once."""
    delete_upstream_references(task)
    stored = set(task.images.values_list("index", flat=True))
    leftovers = [
        task.images_expected_name(index, suffix)
        for index in range(len(task.result_urls))
        if index not in stored
        for suffix in (*(ext for _, ext in options.IMAGE_FORMATS.values()), ".thumb.webp")
    ]
    delete_stored_files([name for name in leftovers if default_storage.exists(name)])
    budgets.settle(task, len(stored))


def _plain(error):
    return getattr(error, "message", None) or str(error) or error.__class__.__name__

"""The worker's first step for an API task with https image_urls: fetch each one through the
SSRF-safe client (gallery/netguard.py) under the upload rules, store it as the task's reference
at its place in the list, and only then let the task go upstream. A bad URL fails the task with
a sentence naming it; a passing network problem is tried again with backoff."""

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from gallery import netguard, options, pipeline
from gallery.forms.studio import check_model_settings, check_reference
from gallery.images.decode import inspect_image
from gallery.models import ReferenceImage
from gallery.models.tasks import delete_stored_files
from gallery.outbound import USER_AGENT, url_policy, within_lease

log = logging.getLogger(__name__)
FETCH_DEADLINE_SECONDS = 30.0
BAD_URL = "invalid_parameters"


def fetch_image_urls(task):
    """True once every pending URL is a stored reference; False when the task failed or must
    wait (its next check is then scheduled)."""
    done = set(task.references.values_list("position", flat=True))
    with netguard.make_client(url_policy(), headers={"User-Agent": USER_AGENT}) as client:
        for item in task.pending_image_urls:
            if item["position"] in done:
                continue  # stored by an attempt that died before clearing the list
            task.extend_lease()
            param = f"image_urls[{item['position']}]"
            try:
                data = fetch_one(client, item["url"])
                ref = check_reference(param, data)
            except netguard.UnsafeURL as e:
                return _refuse(task, f"{param} ({item['url'][:200]}) was refused: {e.message}")
            except ValidationError as e:
                return _refuse(task, f"{param} ({item['url'][:200]}): {e.messages[0]}")
            except netguard.FetchError as e:
                if e.retryable and task.retries < settings.TASK_MAX_RETRIES:
                    task.update_fields(retries=task.retries + 1, next_check_at=pipeline.backoff(task),
                                       error_message=f"Could not fetch {param} yet: {e.message} Trying again…")
                    return False
                return _refuse(task, f"{param} ({item['url'][:200]}) could not be fetched: {e.message}")
            store(task, item["position"], ref)
    if task.background == "transparent":
        references = [_Checked(ref) for ref in task.references.all()]
        if problem := check_model_settings(task.seedream, {"background": "transparent"}, references).get("background"):
            return _refuse(task, problem)
    task.update_fields(pending_image_urls=[], error_message="")
    return True


def fetch_one(client, url):
    try:
        body, _ = netguard.fetch(
            client, url, url_policy(), max_bytes=options.MAX_REFERENCE_BYTES,
            deadline_seconds=within_lease(FETCH_DEADLINE_SECONDS), max_redirects=0,
        )
    except netguard.FetchError as e:
        if e.code == "too_large":
            raise ValidationError(f"the image is larger than {options.MAX_REFERENCE_BYTES // 2**20} MB, "
                                  "the most a reference image may be.") from None
        raise
    return body


def store(task, position, ref):
    [name] = pipeline.store_references(task.team, task.created_at, [ref])
    try:
        ReferenceImage.objects.create(
            task=task, team_id=task.team_id, position=position, file=name, original_name=ref.name[:255],
            format=ref.info.format, width=ref.info.width, height=ref.info.height, bytes=ref.info.bytes,
            sha256=ref.info.sha256,
        )
    except IntegrityError:
        delete_stored_files([name])  # another worker stored this one meanwhile


def _refuse(task, message):
    log.info("Task %s: %s", task.pk, message)
    pipeline.fail(task, BAD_URL, message)
    return False


class _Checked:
    """A stored reference as the model rules read one (format and alpha)."""

    def __init__(self, ref):
        with ref.file.open("rb") as f:
            self.info = inspect_image(f.read())

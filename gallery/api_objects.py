"""What the API answers: the upstream's task object, with `results` pointing at the studio's own
signed links (valid for API_RESULT_URL_DAYS, a new one on every GET), and file objects.

Below the API package (gallery/api/) rather than in it: the worker's callbacks (gallery/webhooks.py)
send the same task object, and the pipeline layer imports nothing from the API."""

import re
import uuid

from django.conf import settings
from django.core import signing

from gallery import options
from gallery.models import FINAL_STATES, Status

# A signed link names a random public id (an image's public_id, a file's file_id), never a row id.
RESULT_LINK_SALT = "gallery.api.result.v2"
FILE_LINK_SALT = "gallery.api.file.v2"
# Links made before issue 21 signed the row id itself (signing.dumps(pk), "MQ…" for row 1).
RESULT_SALT = "gallery.api.result"
FILE_SALT = "gallery.api.file"
# EvoLink has four task states; ours map onto them (a cancelled task is a failed one there).
STATUSES = {
    Status.QUEUED: "pending",
    Status.SUBMITTED: "pending",
    Status.RUNNING: "processing",
    Status.STORING: "processing",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "failed",
}
ESTIMATED_SECONDS = 45
TOKEN = re.compile(r"^([A-Za-z0-9_\-:]{10,300})\.(png|jpg|webp)$")


def base_url(request=None, task=None):
    """Where clients reach the studio: STUDIO_PUBLIC_URL when set, else the address the client
    used (remembered on the task for links the worker writes into callbacks)."""
    if settings.STUDIO_PUBLIC_URL:
        return settings.STUDIO_PUBLIC_URL
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return (task.api_base_url if task else "") or "http://127.0.0.1:8000"


def _link(base, prefix, salt, public_id, image_format):
    token = signing.TimestampSigner(salt=salt).sign(public_id)
    return f"{base}{prefix}{token}{options.extension(image_format)}"


def result_url(image, base):
    return _link(base, "/v1/results/", RESULT_LINK_SALT, image.public_id.hex, image.format)


def file_url(api_file, base):
    return _link(base, "/api/v1/files/content/", FILE_LINK_SALT, api_file.file_id, api_file.format)


def _unsign(value, salt, legacy_salt):
    """(field, value) naming the row a signed link is for, or None when the link is not ours,
    altered or expired."""
    match = TOKEN.match(value or "")
    if not match:
        return None
    max_age = settings.API_RESULT_URL_DAYS * 86400
    try:
        return "public", signing.TimestampSigner(salt=salt).unsign(match[1], max_age=max_age)
    except signing.BadSignature:
        pass
    # The old format, with the row id: links made before issue 21 work until they expire. Remove
    # this branch (and RESULT_SALT, FILE_SALT) API_RESULT_URL_DAYS after the release that stopped
    # making them (7 days by default, 365 at most): by then no such link verifies.
    try:
        pk = signing.loads(match[1], salt=legacy_salt, max_age=max_age)
    except signing.BadSignature:
        return None
    return ("pk", pk) if type(pk) is int else None


def result_lookup(token):
    """The GalleryImage filter for a signed result link, or None."""
    found = _unsign(token, RESULT_LINK_SALT, RESULT_SALT)
    if found and found[0] == "public":
        try:
            return {"public_id": uuid.UUID(hex=found[1])}
        except ValueError:
            return None
    return {"pk": found[1]} if found else None


def file_lookup(token):
    """The ApiFile filter for a signed file link, or None."""
    found = _unsign(token, FILE_LINK_SALT, FILE_SALT)
    if found:
        return {"file_id": found[1]} if found[0] == "public" else {"pk": found[1]}
    return None


def own_file_lookup(url):
    """The ApiFile filter for a file_url this studio signed (on whatever host name it was
    reached), else None."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    marker = "/api/v1/files/content/"
    if marker not in path:
        return None
    return file_lookup(path.rsplit(marker, 1)[1])


def task_object(task, base):
    """The upstream's task object for one of our tasks (SPEC §7)."""
    status = STATUSES[task.status]
    obj = {
        "created": int(task.created_at.timestamp()),
        "id": str(task.pk),
        "model": task.model,
        "object": "image.generation.task",
        "progress": 100 if task.status == Status.COMPLETED else task.progress,
        "status": status,
        "task_info": {"can_cancel": task.status not in FINAL_STATES, "estimated_time": ESTIMATED_SECONDS},
        "type": "image",
        # Credits here are the studio's dollars: what the task reserved of the team's budget.
        "usage": {"billing_rule": "per_call", "credits_reserved": float(task.reserved_cost), "user_group": "default"},
    }
    if task.final_cost is not None:
        obj["usage"]["credits_used"] = float(task.final_cost)
    images = list(task.images.order_by("index")) if task.status in FINAL_STATES else []
    if images:
        obj["results"] = [result_url(image, base) for image in images]
    if status == "failed":
        code = task.error_code or ("request_cancelled" if task.status == Status.CANCELLED else "unknown_error")
        message = task.error_message
        if not message:
            message = "The task was cancelled." if task.status == Status.CANCELLED else "The task failed."
        obj["error"] = {"code": code, "message": message}
    return obj


def file_object(api_file, base):
    url = file_url(api_file, base)
    return {
        "file_id": api_file.file_id,
        "file_name": f"{api_file.file_id}{options.extension(api_file.format)}",
        "original_name": api_file.original_name,
        "file_size": api_file.bytes,
        "mime_type": options.content_type(api_file.format),
        "upload_path": "references",
        "file_url": url,
        "download_url": url,
        "upload_time": api_file.created_at.isoformat(timespec="seconds"),
        "expires_at": None,  # kept until deleted: a team reference, not a 72-hour upload
        "width": api_file.width,
        "height": api_file.height,
    }

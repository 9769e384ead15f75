"""What the API answers: the upstream's task object, with `results` pointing at the studio's own
signed links (valid for API_RESULT_URL_DAYS, a new one on every GET), and file objects."""

import re

from django.conf import settings
from django.core import signing

from gallery import options
from gallery.models import FINAL_STATES, Status

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


def _link(base, prefix, salt, pk, image_format):
    token = signing.dumps(pk, salt=salt)
    return f"{base}{prefix}{token}{options.extension(image_format)}"


def result_url(image, base):
    return _link(base, "/v1/results/", RESULT_SALT, image.pk, image.format)


def file_url(api_file, base):
    return _link(base, "/api/v1/files/content/", FILE_SALT, api_file.pk, api_file.format)


def unsign(value, salt):
    """The id a signed link names, or None when it is not ours, altered or expired."""
    match = TOKEN.match(value or "")
    if not match:
        return None
    try:
        pk = signing.loads(match[1], salt=salt, max_age=settings.API_RESULT_URL_DAYS * 86400)
    except signing.BadSignature:
        return None
    return pk if isinstance(pk, int) else None


def own_file_id(url):
    """The ApiFile id of a file_url this studio signed (on whatever host name it was reached), else None."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    marker = "/api/v1/files/content/"
    if marker not in path:
        return None
    return unsign(path.rsplit(marker, 1)[1], FILE_SALT)


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

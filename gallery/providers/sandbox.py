"""The offline sandbox provider: real images drawn with Pillow, simulated queue and progress.

Markers in the prompt make it misbehave like the upstream (documented in README.md):
  [sandbox:fail=CODE]   the task fails with that upstream error code (e.g. content_policy_violation)
  [sandbox:http=STATUS] creating the task answers that HTTP status (429, 500, 502, 503 retryable)
  [sandbox:flaky]       the first attempt fails with service_error, the next one succeeds
  [sandbox:slow=SECONDS] generation takes that long (default 120 s)
  [sandbox:fewer=K]     produces only K images (n is an upper bound upstream too)
"""

import re
import secrets
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from gallery import options
from gallery.images.sandbox import render_sandbox_image

from .base import ProviderError, UpstreamTask

MARKER = re.compile(r"\[sandbox:(fail|http|flaky|slow|fewer)(?:=([\w.]+))?\]")
HTTP_ERRORS = {
    400: ("invalid_request_error", False),
    401: ("authentication_error", False),
    402: ("insufficient_quota_error", False),
    403: ("permission_error", False),
    429: ("rate_limit_error", True),
    500: ("internal_server_error", True),
    502: ("upstream_error", True),
    503: ("service_unavailable_error", True),
}
CHUNK = 256 * 1024


def markers(prompt):
    return {name: value for name, value in MARKER.findall(prompt)}


def output_size(request):
    if request.pixel_size:
        return request.pixel_size
    # `auto`: the shape of the first reference, as the model would pick it; square without one.
    first = request.reference_sizes[0] if request.reference_sizes else None
    return options.pixel_size(options.nearest_ratio(*first) if first else "1:1", request.quality)


class SandboxProvider:
    """An offline upstream. Its own record of the runs it was asked for (what a real upstream
    keeps on its side) is `runs`, a store given by whoever builds it (the SandboxRun table, so
    every process sees the same runs); the provider itself imports no models."""

    name = "sandbox"

    def __init__(self, runs):
        self.runs = runs

    def deliver_reference(self, data, image_format):
        """Keeps what an upstream's file service would receive, under a random name."""
        name = f"sandbox/uploads/{secrets.token_hex(12)}{options.extension(image_format)}"
        name = default_storage.save(name, ContentFile(data))
        return name, f"sandbox://file/{name}"

    def delete_reference(self, file_id):
        if file_id.startswith("sandbox/uploads/"):
            default_storage.delete(file_id)

    def create(self, request):
        found = markers(request.prompt)
        if "http" in found:
            status = int(found["http"]) if found["http"].isdigit() else 500
            kind, retryable = HTTP_ERRORS.get(status, ("internal_server_error", True))
            raise ProviderError(
                f"The sandbox answered HTTP {status} ({kind}).",
                code=kind,
                retryable=retryable,
            )
        attempt = self.runs.filter(client_ref=request.client_ref).count() + 1
        failure = found.get("fail", "")
        if "flaky" in found and attempt == 1:
            failure = "service_error"
        width, height = output_size(request)
        count = min(request.n, int(found["fewer"])) if found.get("fewer", "").isdigit() else request.n
        run = self.runs.create(
            id=f"sandbox-{uuid.uuid4().hex}",
            client_ref=request.client_ref,
            params={
                "prompt": request.prompt,
                "width": width,
                "height": height,
                "count": count,
                "failure": failure,
                "run_seconds": float(found["slow"]) if found.get("slow", "").replace(".", "").isdigit()
                else (120.0 if "slow" in found else settings.SANDBOX_RUN_SECONDS),
                "references": [url.removeprefix("sandbox://file/") for url in request.reference_urls],
                "model": request.seedream.name,
                "transparent": request.background == "transparent",
            },
        )
        return UpstreamTask(id=run.id, status="pending")

    def get(self, upstream_id):
        run = self.runs.filter(pk=upstream_id).first()
        if run is None:
            raise ProviderError.from_task_code("resource_not_found")
        params = run.params
        elapsed = (timezone.now() - run.created_at).total_seconds() - settings.SANDBOX_QUEUE_SECONDS
        if elapsed < 0:
            return UpstreamTask(id=run.id, status="pending")
        if elapsed < params["run_seconds"]:
            return UpstreamTask(id=run.id, status="processing", progress=int(100 * elapsed / params["run_seconds"]))
        if params["failure"]:
            return UpstreamTask(id=run.id, status="failed", error=ProviderError.from_task_code(params["failure"]))
        results = [f"sandbox://{run.id}/{k}" for k in range(params["count"])]
        return UpstreamTask(id=run.id, status="completed", progress=100, results=results)

    def open_result(self, url):
        # The run is read here, on the caller's thread; the drawing happens when the stream is
        # opened, on whichever thread reads it (the Provider protocol's open_result).
        run_id, _, index = url.removeprefix("sandbox://").partition("/")
        run = self.runs.filter(pk=run_id).first()
        if run is None or not index.isdigit() or int(index) >= run.params["count"]:
            raise ProviderError("The sandbox has no such image.", code="result_not_found")
        return _drawn(run.params, int(index))


@contextmanager
def _drawn(params, index):
    references = []
    for name in params["references"]:
        if default_storage.exists(name):
            with default_storage.open(name, "rb") as f:
                references.append(f.read())
    data = render_sandbox_image(
        params["prompt"], params["width"], params["height"], references, index, params["count"],
        model=params.get("model", ""), transparent=params.get("transparent", False),
    )
    yield (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))

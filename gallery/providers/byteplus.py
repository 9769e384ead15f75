"""BytePlus ModelArk's Seedream 4, the second real provider.

It answers synchronously with the image links, so `create` returns a completed task whose
answer is kept (ProviderResult) for `get`. References travel inside the request as base64
data URIs; until then they are kept in the studio's own storage.
"""

import base64
import secrets
from datetime import timedelta
from decimal import Decimal

import httpx
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from gallery.models import ProviderResult

from .base import FINAL_CODES, ProviderError, UpstreamTask
from .evolink import retry_after
from .http import USER_AGENT, open_url

MODEL = "seedream-4-0-250828"
# Generating up to 15 images takes a while. The read timeout stays inside the task's lease, so
# no second worker starts the same (paid) request while this one still waits.
TIMEOUT = None  # tests set a short one
PASSING_ERRORS = {
    429: ("rate_limit_error", "BytePlus is receiving too many requests right now."),
    500: ("internal_server_error", "BytePlus had an internal error."),
    502: ("upstream_error", "BytePlus is temporarily unavailable."),
    503: ("service_unavailable_error", "BytePlus is temporarily unavailable."),
}
STORE_PREFIX = "byteplus/uploads/"
URL_PREFIX = "byteplus://file/"
NO_FUNDS = (
    "The BytePlus account has no funds left (its balance is overdue). An owner must top up the "
    "BytePlus ModelArk account, then retry this task."
)
UNREADABLE = "BytePlus sent an answer the studio could not read. It will be tried again."
# Refusals by (status, code), or by status for any other code.
FINAL_ERRORS = {
    401: (
        "authentication_error",
        "BytePlus did not accept the studio's API key. An administrator of this instance must "
        "check BYTEPLUS_API_KEY.",
    ),
    (403, "AccountOverdueError"): ("insufficient_quota_error", NO_FUNDS),
    403: (
        "permission_error",
        "The BytePlus account may not use Seedream 4. An owner should enable the model in the "
        "ModelArk console.",
    ),
    404: (
        "not_found_error",
        "BytePlus does not offer Seedream 4 to this account. An owner should activate the model in "
        "the ModelArk console.",
    ),
}


class BytePlusProvider:
    name = "byteplus"

    def __init__(self):
        self.api_key = settings.BYTEPLUS_API_KEY
        self.base_url = settings.BYTEPLUS_BASE_URL

    def price(self, quality):
        return Decimal(str(settings.PRICE_PER_IMAGE.get(self.name, 0)))

    def deliver_reference(self, data, content_type):
        ext = ".png" if content_type == "image/png" else ".jpg"
        name = default_storage.save(f"{STORE_PREFIX}{secrets.token_hex(12)}{ext}", ContentFile(data))
        return name, URL_PREFIX + name

    def delete_reference(self, file_id):
        if file_id.startswith(STORE_PREFIX):
            default_storage.delete(file_id)

    def create(self, task, reference_urls):
        width_height = task.pixel_size
        body = {
            "model": MODEL,
            "prompt": task.sent_prompt,
            # `auto` has no pixel size: the resolution alone lets the model pick the shape.
            "size": f"{width_height[0]}x{width_height[1]}" if width_height else task.quality,
            "sequential_image_generation": "auto" if task.n > 1 else "disabled",
            "optimize_prompt_options": {"mode": task.priority},
            "response_format": "url",
            "watermark": False,
            "stream": False,
        }
        if task.n > 1:
            body["sequential_image_generation_options"] = {"max_images": task.n}
        if reference_urls:
            body["image"] = [self._data_uri(url) for url in reference_urls]
        answer = self._request(body)
        items = answer.get("data")
        if not isinstance(items, list):
            raise ProviderError(UNREADABLE, code="invalid_response", retryable=True)
        results = [item["url"] for item in items if isinstance(item, dict) and _is_http(item.get("url"))]
        if not results:
            # In a batch each image may fail on its own; with none left, the first reason counts.
            codes = [str((item.get("error") or {}).get("code")) for item in items if isinstance(item, dict)]
            if codes and "SensitiveContent" in codes[0]:
                raise task_error(codes[0], "")
            if codes:
                raise ProviderError.from_task_code("generation_failed_no_content")
        upstream_id = f"byteplus-{secrets.token_hex(12)}"
        ProviderResult.objects.filter(created_at__lt=timezone.now() - timedelta(days=1)).delete()
        ProviderResult.objects.create(id=upstream_id, provider=self.name, results=results)
        return UpstreamTask(id=upstream_id, status="completed", progress=100, results=results)

    def get(self, upstream_id):
        found = ProviderResult.objects.filter(pk=upstream_id, provider=self.name).first()
        if found is None:
            raise ProviderError.from_task_code("resource_not_found")
        return UpstreamTask(id=found.id, status="completed", progress=100, results=found.results)

    def open_result(self, url):
        return open_url(url)

    def _data_uri(self, url):
        name = url.removeprefix(URL_PREFIX)
        if not url.startswith(URL_PREFIX) or not default_storage.exists(name):
            message = "A reference image could not be found to send to BytePlus. Retry the task."
            raise ProviderError(message, code="reference_missing")
        with default_storage.open(name, "rb") as f:
            data = f.read()
        content_type = "image/png" if name.endswith(".png") else "image/jpeg"
        return f"data:{content_type};base64,{base64.b64encode(data).decode()}"

    def _request(self, body):
        headers = {"User-Agent": USER_AGENT, "Authorization": f"Bearer {self.api_key}"}
        timeout = TIMEOUT or httpx.Timeout(
            connect=10.0, read=max(10.0, settings.TASK_LEASE_SECONDS - 20.0), write=60.0, pool=10.0
        )
        try:
            with httpx.Client(timeout=timeout, headers=headers) as client:
                response = client.post(f"{self.base_url}/api/v3/images/generations", json=body)
        except httpx.TimeoutException as e:
            raise ProviderError("BytePlus did not answer in time.", code="timeout", retryable=True) from e
        except httpx.HTTPError as e:
            message = f"The studio could not reach BytePlus ({e.__class__.__name__})."
            raise ProviderError(message, code="network", retryable=True) from e
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            raise http_error(response.status_code, answer, response.headers)
        if not isinstance(answer, dict):
            raise ProviderError(UNREADABLE, code="invalid_response", retryable=True)
        return answer


def http_error(status, answer, headers):
    """BytePlus answers {"error": {"code", "message", "type"}}; its errors are mapped onto the
    codes EvoLink uses, so the router and the history read both alike."""
    found = answer.get("error") if isinstance(answer, dict) else None
    found = found if isinstance(found, dict) else {}
    code, detail = str(found.get("code") or ""), str(found.get("message") or "")[:300]
    if status in PASSING_ERRORS:
        kind, message = PASSING_ERRORS[status]
        after = retry_after(headers.get("Retry-After"))
        return ProviderError(message, code=kind, retryable=True, retry_after=after)
    if status == 400:
        return task_error(code, detail)
    kind, message = FINAL_ERRORS.get((status, code)) or FINAL_ERRORS.get(status) or (
        f"http_{status}",
        f"BytePlus answered HTTP {status}.",
    )
    return ProviderError(message, code=kind)


def task_error(code, detail):
    """A refusal of this task itself: its content or its settings."""
    if "SensitiveContent" in code:
        return ProviderError(FINAL_CODES["content_policy_violation"], code="content_policy_violation")
    message = FINAL_CODES["invalid_parameters"]
    if detail:
        message = f"{message} BytePlus said: “{detail}”"
    return ProviderError(message, code="invalid_parameters")


def _is_http(url):
    return isinstance(url, str) and url.startswith(("https://", "http://"))

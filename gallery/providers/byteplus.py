"""BytePlus ModelArk's Seedream, the second real provider.

It answers synchronously with the image links, so `create` returns a completed task and the
pipeline stores its results at once. References travel inside the request as base64 data URIs;
until then they are kept in the studio's own storage.
"""

import base64
import secrets

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from gallery import options

from .base import FINAL_CODES, ProviderError, UpstreamTask
from .http import Upstream, status_error

# Up to 15 images in one answer takes a while: the call may last the task's whole lease (less a
# margin, see outbound.within_lease). Tests set a short one.
CALL_DEADLINE = None
STORE_PREFIX = "byteplus/uploads/"
URL_PREFIX = "byteplus://file/"
NO_FUNDS = (
    "The BytePlus account has no funds left (its balance is overdue). An owner must top up the "
    "BytePlus ModelArk account, then retry this task."
)
UNREADABLE = "BytePlus sent an answer the studio could not read. It will be tried again."
# BytePlus answers {"error": {"code", "message", "type"}}; its errors are mapped onto the codes
# EvoLink uses, so the router and the history read both alike.
ERRORS = {
    429: ("rate_limit_error", "BytePlus is receiving too many requests right now."),
    500: ("internal_server_error", "BytePlus had an internal error."),
    502: ("upstream_error", "BytePlus is temporarily unavailable."),
    503: ("service_unavailable_error", "BytePlus is temporarily unavailable."),
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
        self.base_url = settings.BYTEPLUS_BASE_URL
        self.http = Upstream("BytePlus", {"Authorization": f"Bearer {settings.BYTEPLUS_API_KEY}"})

    def deliver_reference(self, data, image_format):
        name = f"{STORE_PREFIX}{secrets.token_hex(12)}{options.extension(image_format)}"
        name = default_storage.save(name, ContentFile(data))
        return name, URL_PREFIX + name

    def delete_reference(self, file_id):
        if file_id.startswith(STORE_PREFIX):
            default_storage.delete(file_id)

    def create(self, request):
        """BytePlus answers with the images themselves: the task comes back completed."""
        width_height = request.pixel_size
        body = {
            "model": request.seedream.provider_ids["byteplus"],
            "prompt": request.prompt,
            # `auto` has no pixel size: the resolution alone lets the model pick the shape.
            "size": f"{width_height[0]}x{width_height[1]}" if width_height else request.quality,
            "sequential_image_generation": "auto" if request.n > 1 else "disabled",
            "optimize_prompt_options": {"mode": request.priority},
            "response_format": "url",
            "watermark": request.watermark,
            "stream": False,
        }
        if request.n > 1:
            body["sequential_image_generation_options"] = {"max_images": request.n}
        if request.output_format:
            body["output_format"] = request.output_format
        if request.web_search:
            body["tools"] = [{"type": "web_search"}]
        if request.background:
            body["background"] = request.background
        if request.reference_urls:
            body["image"] = [self._data_uri(url) for url in request.reference_urls]
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
        return UpstreamTask(id=f"byteplus-{secrets.token_hex(12)}", status="completed", progress=100, results=results)

    def get(self, upstream_id):
        # The pipeline records the results `create` returned; BytePlus has nothing to follow.
        raise ProviderError.from_task_code("resource_not_found")

    def open_result(self, url):
        return self.http.open_result(url)

    def _data_uri(self, url):
        name = url.removeprefix(URL_PREFIX)
        if not url.startswith(URL_PREFIX) or not default_storage.exists(name):
            message = "A reference image could not be found to send to BytePlus. Retry the task."
            raise ProviderError(message, code="reference_missing")
        with default_storage.open(name, "rb") as f:
            data = f.read()
        return f"data:{options.content_type(options.format_of(name))};base64,{base64.b64encode(data).decode()}"

    def _request(self, body):
        status, answer, headers = self.http.call(
            "POST", f"{self.base_url}/api/v3/images/generations", json=body,
            deadline=CALL_DEADLINE or settings.TASK_LEASE_SECONDS,
        )
        if status >= 300:
            raise status_error("BytePlus", status, answer, headers, ERRORS, refusal=task_error)
        if not isinstance(answer, dict):
            raise ProviderError(UNREADABLE, code="invalid_response", retryable=True)
        return answer


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

"""EvoLink, the default real provider (SPEC §7): tasks, the file service for references, and
the credit balance. Every failure becomes a ProviderError with a sentence for the history."""

import email.utils
import time
from decimal import Decimal
from urllib.parse import quote

import httpx
from django.conf import settings
from django.utils.crypto import salted_hmac

from .base import ProviderError, UpstreamTask
from .http import USER_AGENT, open_url

MODEL = "doubao-seedream-4.0"
TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=60.0, pool=10.0)
CREDITS_TIMEOUT = httpx.Timeout(10.0)  # read by the worker, never during a page
CREDITS_PER_IMAGE = Decimal("1.6")
STATUSES = {"pending", "processing", "completed", "failed"}
RETRYABLE_STATUSES = {429, 500, 502, 503}
MAX_RETRY_AFTER = 600.0

# HTTP errors by status, as SPEC §7 documents them: the error type becomes the task's code.
HTTP_ERRORS = {
    400: ("invalid_request_error", "EvoLink refused the request."),
    401: (
        "authentication_error",
        "EvoLink did not accept the studio's API key. An administrator of this instance must "
        "check EVOLINK_API_KEY.",
    ),
    402: (
        "insufficient_quota_error",
        "The EvoLink account has run out of credits. An owner must top up the EvoLink credits "
        "(evolink.ai dashboard), then retry this task.",
    ),
    403: (
        "permission_error",
        "The EvoLink account is not allowed to do this. An owner should check the account's "
        "access to Seedream 4 at evolink.ai.",
    ),
    404: ("not_found_error", "EvoLink does not know what the studio asked for."),
    413: (
        "request_too_large_error",
        "The request was too large for EvoLink: use fewer or smaller reference images.",
    ),
    429: ("rate_limit_error", "EvoLink is receiving too many requests from this account right now."),
    500: ("internal_server_error", "EvoLink had an internal error."),
    502: ("upstream_error", "EvoLink's own upstream failed."),
    503: ("service_unavailable_error", "EvoLink is temporarily unavailable."),
}
FILE_QUOTA = (
    "EvoLink's file storage for this account is full (it holds about 100 files). The studio "
    "deletes its files when tasks finish, so this will be tried again."
)
UNREADABLE = "EvoLink sent an answer the studio could not read. It will be tried again."


class EvoLinkProvider:
    name = "evolink"

    def __init__(self):
        self.api_key = settings.EVOLINK_API_KEY
        self.base_url = settings.EVOLINK_BASE_URL
        self.files_url = settings.EVOLINK_FILES_URL

    def price(self, quality):
        return Decimal(str(settings.PRICE_PER_IMAGE.get(self.name, 0)))

    def create(self, task, reference_urls):
        body = {"model": MODEL, "prompt": task.sent_prompt, "n": task.n, "prompt_priority": task.priority}
        if task.custom_width:
            body["size"] = f"{task.custom_width}x{task.custom_height}"
        else:
            body["size"], body["quality"] = task.size, task.quality
        if reference_urls:
            body["image_urls"] = list(reference_urls)
        if settings.STUDIO_PUBLIC_URL.startswith("https://"):
            body["callback_url"] = callback_url(task.pk)
        return parse_task(self._request("POST", f"{self.base_url}/v1/images/generations", json=body))

    def get(self, upstream_id):
        try:
            answer = self._request("GET", f"{self.base_url}/v1/tasks/{quote(upstream_id, safe='')}")
        except ProviderError as e:
            if e.code == "not_found_error":
                raise ProviderError.from_task_code("resource_not_found") from e
            raise
        return parse_task(answer)

    def deliver_reference(self, data, content_type):
        name = "reference.png" if content_type == "image/png" else "reference.jpg"
        answer = self._request(
            "POST",
            f"{self.files_url}/api/v1/files/upload/stream",
            files={"file": (name, data, content_type)},
            file_service=True,
        )
        found = answer.get("data") if answer.get("success") is not False else None
        if not isinstance(found, dict) or not found.get("file_id") or not _is_http(found.get("file_url")):
            raise file_service_error(answer.get("code"), answer)
        return str(found["file_id"]), found["file_url"]

    def delete_reference(self, file_id):
        try:
            url = f"{self.files_url}/api/v1/files/{quote(file_id, safe='')}"
            self._request("DELETE", url, file_service=True)
        except ProviderError as e:
            if e.code != "not_found_error":  # already gone: that is what we wanted
                raise

    def open_result(self, url):
        return open_url(url)

    def credits(self):
        """The account's remaining credits: {"user": …, "images": about how many images they
        buy, "token": what this key may still spend, None when unlimited}. Raises
        ProviderError, quickly, when EvoLink cannot tell."""
        answer = self._request("GET", f"{self.base_url}/v1/credits", timeout=CREDITS_TIMEOUT)
        data = answer.get("data")
        user = data.get("user") if isinstance(data, dict) else None
        token = data.get("token") if isinstance(data, dict) else None
        try:
            remaining = float(user["remaining_credits"])
            token_left = None
            if isinstance(token, dict) and not token.get("unlimited_credits"):
                token_left = float(token["remaining_credits"])
        except (KeyError, TypeError, ValueError):
            raise unreadable() from None
        images = int(Decimal(str(remaining)) / CREDITS_PER_IMAGE) if remaining > 0 else 0
        return {"user": remaining, "images": images, "token": token_left}

    def _request(self, method, url, *, timeout=None, file_service=False, **kwargs):
        """The JSON object EvoLink answered; network trouble, HTTP errors and unreadable
        answers all become ProviderErrors."""
        headers = {"User-Agent": USER_AGENT, "Authorization": f"Bearer {self.api_key}"}
        try:
            with httpx.Client(timeout=timeout or TIMEOUT, headers=headers) as client:
                response = client.request(method, url, **kwargs)
        except httpx.TimeoutException as e:
            raise ProviderError("EvoLink did not answer in time.", code="timeout", retryable=True) from e
        except httpx.HTTPError as e:
            message = f"The studio could not reach EvoLink ({e.__class__.__name__})."
            raise ProviderError(message, code="network", retryable=True) from e
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None
        if response.status_code >= 400:
            if file_service:
                raise file_service_error(response.status_code, body, response.headers)
            raise http_error(response.status_code, body, response.headers)
        if not isinstance(body, dict):
            raise unreadable()
        return body


def parse_task(answer):
    """An UpstreamTask from EvoLink's task object (the answer to create and to get)."""
    task_id, status = answer.get("id"), answer.get("status")
    if not isinstance(task_id, str) or not task_id or status not in STATUSES:
        raise unreadable()
    try:
        progress = max(0, min(100, int(answer.get("progress") or 0)))
    except (TypeError, ValueError):
        progress = 0
    results = [url for url in answer.get("results") or [] if _is_http(url)]
    error = None
    if status == "failed":
        # Usually {"code": "...", "message": "..."}, but it may be missing altogether.
        found = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        error = ProviderError.from_task_code(str(found.get("code") or ""))
    return UpstreamTask(id=task_id, status=status, progress=progress, results=results, error=error)


def http_error(status, body, headers):
    found = body.get("error") if isinstance(body, dict) else None
    found = found if isinstance(found, dict) else {}
    fallback = (str(found.get("type") or f"http_{status}"), f"EvoLink answered HTTP {status}.")
    code, sentence = HTTP_ERRORS.get(status, fallback)
    retryable = status in RETRYABLE_STATUSES
    detail = str(found.get("message") or "")[:300]
    if detail and status not in (401, 402) and not retryable:
        # For refusals EvoLink's own words say what to change (e.g. why content was blocked).
        sentence = f"{sentence} EvoLink said: “{detail}”"
    after = retry_after(headers.get("Retry-After")) if retryable else None
    return ProviderError(sentence, code=code, retryable=retryable, retry_after=after)


def file_service_error(status, body, headers=None):
    """The file service answers {"success": false, "code", "msg"}; a full account is worth
    retrying (the studio frees its files as tasks finish), a refused image is not."""
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("msg") or body.get("message") or "")
    status = status if isinstance(status, int) else 400
    if "quota" in detail.lower():
        return ProviderError(FILE_QUOTA, code="file_quota", retryable=True)
    if status in (401, 402, 404) or status in RETRYABLE_STATUSES:
        return http_error(status, {"error": {"message": detail}}, headers or {})
    if status < 400:  # an answer without the file we asked for
        return unreadable()
    message = "EvoLink's file service refused a reference image."
    if detail:
        message = f"{message} It said: “{detail[:300]}”"
    return ProviderError(message, code="file_rejected")


def unreadable():
    return ProviderError(UNREADABLE, code="invalid_response", retryable=True)


def retry_after(value):
    """Seconds from a Retry-After header (a number or an HTTP date), capped; None if absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def callback_token(task_id):
    """Unguessable per task, and needs no stored secret: the callback endpoint recomputes it."""
    return salted_hmac("gallery.evolink.callback", str(task_id), algorithm="sha256").hexdigest()[:32]


def callback_url(task_id):
    # The callback only wakes the task up; the studio re-reads the task with GET (SPEC §7).
    return f"{settings.STUDIO_PUBLIC_URL}/upstream/evolink/{task_id}/{callback_token(task_id)}/"


def _is_http(url):
    return isinstance(url, str) and url.startswith(("https://", "http://"))

"""EvoLink, the default real provider (SPEC §7): tasks, the file service for references, and
the credit balance. Every failure becomes a ProviderError with a sentence for the history."""

from decimal import Decimal
from urllib.parse import quote

from django.conf import settings

from gallery import options
from gallery.offers import images_for

from .base import ProviderError, UpstreamTask
from .http import RETRYABLE_STATUSES, Upstream, status_error

CALL_DEADLINE = 60.0  # one API call, all of it (an upload of a 10 MB reference included)
CREDITS_DEADLINE = 10.0  # read by the worker, never during a page
STATUSES = {"pending", "processing", "completed", "failed"}

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
        self.base_url = settings.EVOLINK_BASE_URL
        self.files_url = settings.EVOLINK_FILES_URL
        self.http = Upstream("EvoLink", {"Authorization": f"Bearer {settings.EVOLINK_API_KEY}"})

    def create(self, request):
        body = {"model": request.model, "prompt": request.prompt, "prompt_priority": request.priority}
        if request.seedream.sends_n:  # 5.0 Pro makes one image per task and takes no `n`
            body["n"] = request.n
        if request.custom_size:
            body["size"] = "{}x{}".format(*request.custom_size)
        else:
            body["size"], body["quality"] = request.size, request.quality
        if request.reference_urls:
            body["image_urls"] = list(request.reference_urls)
        if request.callback_url:
            body["callback_url"] = request.callback_url
        if params := model_params(request):
            body["model_params"] = params
        return parse_task(self._request("POST", f"{self.base_url}/v1/images/generations", json=body))

    def get(self, upstream_id):
        try:
            answer = self._request("GET", f"{self.base_url}/v1/tasks/{quote(upstream_id, safe='')}")
        except ProviderError as e:
            if e.code == "not_found_error":
                raise ProviderError.from_task_code("resource_not_found") from e
            raise
        return parse_task(answer)

    def deliver_reference(self, data, image_format):
        name = f"reference{options.extension(image_format)}"
        answer = self._request(
            "POST",
            f"{self.files_url}/api/v1/files/upload/stream",
            files={"file": (name, data, options.content_type(image_format))},
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
        return self.http.open_result(url)

    def credits(self):
        """The account's remaining credits: {"user": …, "images": about how many images they
        buy, "token": what this key may still spend, None when unlimited}. Raises
        ProviderError when EvoLink cannot tell."""
        answer = self._request("GET", f"{self.base_url}/v1/credits", deadline=CREDITS_DEADLINE)
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
        images = images_for(Decimal(str(remaining)), settings.DEFAULT_MODEL)
        return {"user": remaining, "images": images, "token": token_left}

    def _request(self, method, url, *, deadline=None, file_service=False, **kwargs):
        """The JSON object EvoLink answered; network trouble, HTTP errors and unreadable
        answers all become ProviderErrors."""
        status, body, headers = self.http.call(method, url, deadline=deadline or CALL_DEADLINE, **kwargs)
        if status >= 300:
            if file_service:
                raise file_service_error(status, body, headers)
            raise http_error(status, body, headers)
        if not isinstance(body, dict):
            raise unreadable()
        return body


def model_params(request):
    """The extras a model takes, as EvoLink's `model_params` (only those the model offers)."""
    model, params = request.seedream, {}
    if request.output_format and model.output_formats:
        params["output_format"] = request.output_format
    if request.web_search and model.web_search:
        params["tools"] = [{"type": "web_search"}]
    if model.watermark:
        params["watermark"] = request.watermark  # sent either way: its default is off
    if request.background and model.backgrounds:
        params["background"] = request.background
    return params


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
    return status_error("EvoLink", status, body, headers, HTTP_ERRORS)


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


def _is_http(url):
    return isinstance(url, str) and url.startswith(("https://", "http://"))

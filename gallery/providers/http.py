"""The one HTTP path of every upstream call: a provider's API calls and its result downloads.

Each provider keeps one `Upstream` (a new client loads the CA bundle each time, 20 ms). Every call
has one total deadline (not a timeout per phase) and a byte cap, through gallery.netguard. The
provider's API address was configured by the operator and is called as it is; result links are
not ours (CDNs answer with redirects, a link could point anywhere), so every hop goes through
the same address checks as a URL a user gives: https only outside development, public addresses
only, connected to the address that was checked.
"""

import email.utils
import json
import time
from contextlib import contextmanager

from django.conf import settings

from gallery import netguard
from gallery.outbound import USER_AGENT, url_policy, within_lease

from .base import ProviderError

MAX_REDIRECTS = 5
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # an API answer (JSON) larger than this is not one
RETRYABLE_STATUSES = {429, 500, 502, 503}
MAX_RETRY_AFTER = 600.0
# One image's whole download, redirects included.
RESULT_DEADLINE_SECONDS = 120.0


class Upstream:
    """One provider's HTTP: its API client, its downloads client, and how its errors read."""

    def __init__(self, label, headers):
        self.label = label
        self.api = netguard.make_client(netguard.CONFIGURED, headers={"User-Agent": USER_AGENT, **headers})
        self.downloads = netguard.make_client(url_policy(), headers={"User-Agent": USER_AGENT})

    def call(self, method, url, *, deadline=60.0, **kwargs):
        """(status, JSON body or None, headers) of one API call; network trouble and timeouts
        become retryable ProviderErrors that name the provider."""
        try:
            answer = netguard.request(
                self.api, url, netguard.CONFIGURED, max_bytes=MAX_ANSWER_BYTES,
                deadline_seconds=within_lease(deadline), method=method, **kwargs,
            )
        except netguard.FetchError as e:
            if e.code == "timeout":
                raise ProviderError(f"{self.label} did not answer in time.", code="timeout", retryable=True) from e
            message = f"The studio could not reach {self.label} ({e.message})"
            raise ProviderError(message, code="network", retryable=True) from e
        except netguard.UnsafeURL as e:  # a malformed configured address
            raise ProviderError(f"{self.label}'s address is not usable: {e.message}", code="network") from e
        try:
            body = json.loads(answer.content) if answer.content else {}
        except ValueError:
            body = None
        return answer.status, body, answer.headers

    @contextmanager
    def open_result(self, url):
        with open_url(url, self.downloads) as chunks:
            yield chunks


def status_error(label, status, body, headers, sentences, refusal=None):
    """The ProviderError for an upstream's HTTP error answer, read alike for every provider.

    `sentences` maps a status, or (status, error code), to (our code, a sentence for the history);
    `refusal(code, detail)` reads a 400 (a refusal of the task's own content or settings) when the
    provider words those in its own way. 429 and 5xx are worth retrying, after Retry-After.
    """
    found = body.get("error") if isinstance(body, dict) else None
    found = found if isinstance(found, dict) else {}
    code = str(found.get("code") or "")
    detail = str(found.get("message") or (body.get("msg") if isinstance(body, dict) else "") or "")[:300]
    retryable = status in RETRYABLE_STATUSES
    if status == 400 and refusal and not retryable:
        return refusal(code, detail)
    specific = sentences.get((status, code))
    kind, sentence = (
        specific
        or sentences.get(status)
        or (str(found.get("type") or f"http_{status}"), f"{label} answered HTTP {status}.")
    )
    if detail and not (retryable or specific or status in (401, 402)):
        # For refusals the upstream's own words say what to change (e.g. why content was blocked);
        # an error we know by its code already has a sentence that says it.
        sentence = f"{sentence} {label} said: “{detail}”"
    after = retry_after(headers.get("Retry-After")) if retryable else None
    return ProviderError(sentence, code=kind, retryable=retryable, retry_after=after)


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


@contextmanager
def open_url(url, http_client=None):
    """Yields the body of `url` as a stream of chunks, at most MAX_RESULT_BYTES over the whole
    redirect chain. Expired links (404/410), refused addresses, redirect loops and oversized
    answers are final; server errors, timeouts and network trouble are worth retrying.
    """
    own = http_client is None
    http_client = http_client or netguard.make_client(url_policy(), headers={"User-Agent": USER_AGENT})
    try:
        with netguard.open_stream(
            http_client, url, url_policy(), max_bytes=settings.MAX_RESULT_BYTES,
            deadline_seconds=within_lease(RESULT_DEADLINE_SECONDS), max_redirects=MAX_REDIRECTS,
        ) as body:
            yield body
    except netguard.UnsafeURL as e:
        raise ProviderError(f"The provider's link to an image was refused: {e.message}", code="result_refused") from e
    except netguard.FetchError as e:
        raise download_error(e) from e
    finally:
        if own:
            http_client.close()


def download_error(error):
    if error.status in (404, 410):
        return ProviderError("The provider's link to this image has expired.", code="result_expired")
    if error.code == "http_status":
        return ProviderError(
            f"The provider answered HTTP {error.status} for an image.", code="result_http_error",
            retryable=error.retryable,
        )
    if error.code == "too_large":
        return ProviderError(
            f"The provider sent an image larger than the studio accepts ({settings.MAX_RESULT_BYTES:,} bytes).",
            code="result_too_large",
        )
    if error.code in ("redirect_loop", "too_many_redirects", "redirects_not_followed"):
        return ProviderError(f"The provider's link to an image could not be followed: {error.message}", code=error.code)
    return ProviderError(f"The image download failed: {error.message}", code=error.code, retryable=error.retryable)

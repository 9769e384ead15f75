"""Streaming download of result images over HTTP, shared by the real providers.

A provider's result links are not ours: CDNs answer with redirects, and a link could point
anywhere. Every hop goes through the same checks as a URL a user gives (gallery.netguard): https
only outside development, public addresses only, connected to the address that was checked.
"""

from contextlib import contextmanager

from django.conf import settings

from gallery import netguard

from .base import ProviderError

USER_AGENT = "SeedreamStudio/1.0 (+self-hosted)"
MAX_REDIRECTS = 5
# One image's whole download, redirects included; kept well inside the task's lease.
RESULT_DEADLINE_SECONDS = 120.0


def url_policy():
    return netguard.Policy(allow_http=settings.ALLOW_HTTP_URLS, allow_loopback=settings.ALLOW_LOOPBACK_URLS)


def results_client():
    """One client for a provider's downloads: a new client loads the CA bundle each time."""
    return netguard.make_client(url_policy(), headers={"User-Agent": USER_AGENT})


def result_deadline():
    return min(RESULT_DEADLINE_SECONDS, max(5.0, settings.TASK_LEASE_SECONDS - 10.0))


@contextmanager
def open_url(url, http_client=None):
    """Yields the body of `url` as a stream of chunks, at most MAX_RESULT_BYTES over the whole
    redirect chain. Expired links (404/410), refused addresses, redirect loops and oversized
    answers are final; server errors, timeouts and network trouble are worth retrying.
    """
    own = http_client is None
    http_client = http_client or results_client()
    try:
        with netguard.open_stream(
            http_client, url, url_policy(), max_bytes=settings.MAX_RESULT_BYTES,
            deadline_seconds=result_deadline(), max_redirects=MAX_REDIRECTS,
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

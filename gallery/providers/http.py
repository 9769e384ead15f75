"""Streaming download of result images over HTTP, shared by the real providers."""

from contextlib import contextmanager

import httpx

from .base import ProviderError

USER_AGENT = "SeedreamStudio/1.0 (+self-hosted)"
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
CHUNK = 256 * 1024


def client(**kwargs):
    return httpx.Client(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, **kwargs)


@contextmanager
def open_url(url, http_client=None):
    """Yields the body of `url` as a stream of chunks; the caller caps how much it reads.

    Expired links (404/410) are final; server errors and network trouble are worth retrying.
    """
    own = http_client is None
    http_client = http_client or client()
    try:
        with http_client.stream("GET", url) as response:
            if response.status_code in (404, 410):
                raise ProviderError("The provider's link to this image has expired.", code="result_expired")
            if response.status_code >= 400:
                raise ProviderError(
                    f"The provider answered HTTP {response.status_code} for an image.",
                    code="result_http_error",
                    retryable=response.status_code in (408, 429) or response.status_code >= 500,
                )
            yield response.iter_bytes(CHUNK)
    except httpx.HTTPError as e:
        raise ProviderError(f"The image download failed ({e.__class__.__name__}).", code="network", retryable=True) from e
    finally:
        if own:
            http_client.close()

"""The provider protocol: what the pipeline needs from any upstream that runs Seedream, over plain data."""

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Iterator, Protocol

from gallery import catalog, options

# Upstream task error codes (SPEC §7): the final ones need the user to change something.
FINAL_CODES = {
    "content_policy_violation": "The provider's safety filter blocked this prompt or its images. Change the prompt or the references and try again.",
    "invalid_parameters": "The provider rejected these settings. Change them and try again.",
    "image_processing_error": "The provider could not process one of the reference images. Try another image.",
    "image_dimension_mismatch": "The reference images' sizes do not fit the requested output. Try other references or settings.",
    "request_cancelled": "The provider cancelled this task.",
    "resource_not_found": "The provider no longer knows this task.",
}
RETRYABLE_CODES = {
    "generation_timeout": "The provider took too long to generate the images.",
    "quota_exceeded": "The provider's capacity was used up for the moment.",
    "resource_exhausted": "The provider ran out of resources for the moment.",
    "generation_failed_no_content": "The provider finished without producing an image.",
    "service_error": "The provider had an internal error.",
    "service_unavailable": "The provider was unavailable.",
    "unknown_error": "The provider failed for an unknown reason.",
}
UNKNOWN_FAILURE = "The provider reported a failure without saying why."


class ProviderError(Exception):
    """An upstream problem, with a sentence for the user and whether trying again may help."""

    def __init__(self, message, *, code="", retryable=False, retry_after=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after

    @classmethod
    def from_task_code(cls, code, detail=""):
        if code in FINAL_CODES:
            return cls(FINAL_CODES[code], code=code, retryable=False)
        message = RETRYABLE_CODES.get(code, UNKNOWN_FAILURE)
        return cls(message, code=code or "unknown_error", retryable=True)


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, as plain data the pipeline builds from a task: providers never see a
    database row."""

    client_ref: str  # the studio's own id for the task (the sandbox keys its runs by it)
    prompt: str  # as sent, with "Generate n different images." when asked
    model: str
    size: str  # a ratio or "auto"; ignored when custom_size is set
    quality: str
    n: int
    priority: str
    custom_size: tuple[int, int] | None = None
    reference_urls: tuple[str, ...] = ()
    reference_sizes: tuple[tuple[int, int], ...] = ()  # upright (width, height) of each reference
    callback_url: str = ""
    output_format: str = ""  # extras some models take (gallery/catalog.py); empty/False: not asked
    web_search: bool = False
    watermark: bool = False
    background: str = ""

    @property
    def seedream(self):
        return catalog.MODELS[self.model]

    @property
    def pixel_size(self):
        """(width, height) asked for, or None for `auto` (the model decides)."""
        return self.custom_size or options.pixel_size(self.size, self.quality)


@dataclass
class UpstreamTask:
    id: str
    status: str  # pending | processing | completed | failed
    progress: int = 0
    results: list[str] = field(default_factory=list)
    error: ProviderError | None = None


class Provider(Protocol):
    name: str

    def deliver_reference(self, data: bytes, image_format: str) -> tuple[str, str]:
        """Makes a reference image (JPEG or PNG, metadata stripped) reachable by the upstream;
        returns (file_id, url)."""

    def delete_reference(self, file_id: str) -> None: ...

    def create(self, request: GenerationRequest) -> UpstreamTask:
        """Starts the task; a provider that answers at once returns it completed, with results."""

    def get(self, upstream_id: str) -> UpstreamTask: ...

    def open_result(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        """The bytes of one result image, as a stream of chunks.

        Called on the pipeline's thread, which may use the database; the context manager it
        returns is entered on one of the store's download threads, which must not (the store
        downloads several results at once, and writes rows from its own thread only)."""

"""The upstreams that run Seedream, behind one protocol over plain data (base.py). Providers are
built and chosen by the pipeline (gallery/routing.py); they import no models."""

from .base import GenerationRequest, ProviderError, UpstreamTask  # noqa: F401

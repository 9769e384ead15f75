from django.conf import settings

from .base import ProviderError, UpstreamTask  # noqa: F401


def get_provider(name):
    if name == "sandbox":
        from .sandbox import SandboxProvider

        return SandboxProvider()
    if name == "evolink":
        # The EvoLink client comes with its own issue; say so rather than pretend.
        raise ProviderError(
            "The EvoLink provider is not part of this version yet. An administrator can unset "
            "EVOLINK_API_KEY to use the sandbox.",
            code="provider_unavailable",
        )
    raise ProviderError(f"The provider “{name}” is not available on this instance.", code="unknown_provider")


def default_provider_name():
    """The sandbox runs until an upstream key is configured."""
    return "evolink" if settings.EVOLINK_API_KEY else "sandbox"


def price_per_image(name):
    return settings.PRICE_PER_IMAGE.get(name, 0)

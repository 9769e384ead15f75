from django.conf import settings

from .base import ProviderError, UpstreamTask  # noqa: F401

LABELS = {"evolink": "EvoLink", "byteplus": "BytePlus ModelArk", "sandbox": "Sandbox"}
# A real provider is configured when its key is set.
KEY_SETTINGS = {"evolink": "EVOLINK_API_KEY", "byteplus": "BYTEPLUS_API_KEY"}


def get_provider(name):
    if name == "sandbox":
        from .sandbox import SandboxProvider

        return SandboxProvider()
    if name in KEY_SETTINGS and not getattr(settings, KEY_SETTINGS[name]):
        raise ProviderError(
            f"{LABELS[name]} is no longer configured on this instance ({KEY_SETTINGS[name]} is not set).",
            code="provider_unavailable",
        )
    if name == "evolink":
        from .evolink import EvoLinkProvider

        return EvoLinkProvider()
    if name == "byteplus":
        from .byteplus import BytePlusProvider

        return BytePlusProvider()
    raise ProviderError(f"The provider “{name}” is not available on this instance.", code="unknown_provider")


def default_provider_name():
    """The provider a new task is priced for: the cheapest healthy one (the sandbox until an
    upstream key is configured). The router may still send the task elsewhere."""
    from .router import first_choice

    return first_choice()


def price_per_image(name):
    return settings.PRICE_PER_IMAGE.get(name, 0)

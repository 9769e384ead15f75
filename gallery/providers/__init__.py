from django.conf import settings

from gallery import catalog

from .base import GenerationRequest, ProviderError, UpstreamTask  # noqa: F401

LABELS = {"evolink": "EvoLink", "byteplus": "BytePlus ModelArk", "sandbox": "Sandbox"}
# A real provider is configured when its key is set.
KEY_SETTINGS = {"evolink": "EVOLINK_API_KEY", "byteplus": "BYTEPLUS_API_KEY"}
_instances = {}


def get_provider(name):
    """The provider called `name`, one instance per process and configuration, so its HTTP
    clients (and their loaded CA bundle and open connections) are reused call after call."""
    if name in KEY_SETTINGS and not getattr(settings, KEY_SETTINGS[name]):
        raise ProviderError(
            f"{LABELS[name]} is no longer configured on this instance ({KEY_SETTINGS[name]} is not set).",
            code="provider_unavailable",
        )
    if name not in LABELS:
        raise ProviderError(f"The provider “{name}” is not available on this instance.", code="unknown_provider")
    configuration = tuple(str(getattr(settings, setting, "")) for setting in CONFIGURATION[name])
    built = _instances.get(name)
    if built is None or built[0] != configuration:  # first use, or the settings changed (tests)
        built = _instances[name] = (configuration, _build(name))
    return built[1]


# The settings each provider is built from.
CONFIGURATION = {
    "sandbox": (),
    "evolink": ("EVOLINK_API_KEY", "EVOLINK_BASE_URL", "EVOLINK_FILES_URL", "ALLOW_HTTP_URLS", "ALLOW_LOOPBACK_URLS"),
    "byteplus": ("BYTEPLUS_API_KEY", "BYTEPLUS_BASE_URL", "ALLOW_HTTP_URLS", "ALLOW_LOOPBACK_URLS"),
}


def _build(name):
    if name == "evolink":
        from .evolink import EvoLinkProvider

        return EvoLinkProvider()
    if name == "byteplus":
        from .byteplus import BytePlusProvider

        return BytePlusProvider()
    from gallery.models import SandboxRun

    from .sandbox import SandboxProvider

    return SandboxProvider(SandboxRun.objects)


def default_provider_name(model=None, quality=None):
    """The provider a new task is priced for: the cheapest healthy one that serves the model (the
    sandbox until an upstream key is configured). The router may still send the task elsewhere;
    None when no configured provider has a price for the model."""
    from .router import first_choice

    return first_choice(model or settings.DEFAULT_MODEL, quality)


def price_per_image(name, model=None, quality=None):
    """Dollars per image produced, as a Decimal, or None when the provider does not serve the model
    (no price known for it: the model table's default, or a PRICES setting)."""
    return catalog.price(model or settings.DEFAULT_MODEL, name, quality, settings.PRICE_OVERRIDES)

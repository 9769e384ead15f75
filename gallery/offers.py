"""What this studio offers: which providers are configured, which one would serve a model at
what price, and what they are called. Settings and the model table only, no database.

Views, forms, templates and the usage page ask here. A price shown is the cheapest configured
provider's; which provider a task is sent to is the pipeline's choice (gallery/routing.py), the
only place that knows which providers are resting after failures.
"""

from decimal import Decimal

from django.conf import settings

from gallery import catalog

LABELS = {"evolink": "EvoLink", "byteplus": "BytePlus ModelArk", "sandbox": "Sandbox"}
# A real provider is configured when its key is set.
KEY_SETTINGS = {"evolink": "EVOLINK_API_KEY", "byteplus": "BYTEPLUS_API_KEY"}
# EvoLink bills in credits: 1.6 credits buy one Seedream 4.0 image at its list price.
CREDITS_PER_DOLLAR = Decimal("1.6") / catalog.MODELS[catalog.SD40].prices["evolink"]


def label(name):
    return LABELS.get(name, name)


def is_configured(name):
    """Whether provider `name` may be used: its key is set (the sandbox needs none)."""
    return name not in KEY_SETTINGS or bool(getattr(settings, KEY_SETTINGS[name]))


def unconfigured():
    """(label, key setting) of each real provider whose key is not set."""
    return [(LABELS[name], key) for name, key in KEY_SETTINGS.items() if not getattr(settings, key)]


def price_per_image(name, model=None, quality=None):
    """Dollars per image produced, as a Decimal, or None when the provider does not serve the model
    (no price known for it: the model table's default, or a PRICES setting)."""
    return catalog.price(model or settings.DEFAULT_MODEL, name, quality, settings.PRICE_OVERRIDES)


def configured(model=None, quality=None):
    """The providers this instance may use for `model` (all of them when None), cheapest first:
    those with a key set and a price for the model; the sandbox only without any real provider."""
    names = [name for name, key in KEY_SETTINGS.items() if getattr(settings, key)]
    if not names:
        return ["sandbox"]
    if model is None:
        return sorted(names, key=lambda name: (price_per_image(name) is None, price_per_image(name) or 0))
    priced = [(price_per_image(name, model, quality), name) for name in names]
    return [name for price, name in sorted((p, n) for p, n in priced if p is not None)]


def cheapest(model=None, quality=None):
    """The cheapest configured provider with a price for `model` at `quality`, or None when no
    configured provider serves it (the studio then refuses the model)."""
    names = configured(model or settings.DEFAULT_MODEL, quality)
    return names[0] if names else None


def price(model=None, quality=None):
    """Dollars per image of `model` at the cheapest provider that serves it, or None."""
    name = cheapest(model, quality)
    return price_per_image(name, model, quality) if name else None


def images_for(credits, model, quality=None):
    """About how many images of `model` an EvoLink balance of `credits` buys (None: no price known)."""
    quality = quality or catalog.MODELS[model].default_quality
    dollars = price_per_image("evolink", model, quality)
    if credits is None or not dollars:
        return None
    return max(int(Decimal(credits) / (dollars * CREDITS_PER_DOLLAR)), 0)

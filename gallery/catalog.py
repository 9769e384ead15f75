"""The Seedream family as data: what each model accepts, its ids at each provider and its price.

Read by the studio form and the API (the rules), the pixel-size resolver, the providers, the
sandbox, offers and routing (who serves which model, at what price), the templates and the studio's scripts (through
options.studio_rules). Adding a model is one entry in MODELS. Plain data: no Django imports.

Source: EvoLink's API reference (2026). Where copies of it disagree (⚠), the narrower rule is
taken, and the comment next to the value says so.
"""

from dataclasses import dataclass, field
from decimal import Decimal

SD40, SD45, SD50_LITE, SD50_PRO = (
    "doubao-seedream-4.0", "doubao-seedream-4.5", "doubao-seedream-5.0-lite", "doubao-seedream-5.0-pro",
)


@dataclass(frozen=True)
class SeedreamModel:
    id: str  # EvoLink's `model`
    name: str
    strength: str  # one line for the picker
    qualities: tuple  # resolution tiers offered, smallest first
    default_quality: str
    min_pixels: int  # custom WIDTHxHEIGHT, total pixels
    max_pixels: int
    max_prompt_chars: int
    priorities: tuple  # prompt_priority values accepted
    max_images: int = 15  # n; references + n ≤ 15 as well
    sends_n: bool = True  # False: one image per task, and no `n` in the request
    output_formats: tuple = ()  # model_params.output_format values, when the model takes one
    web_search: bool = False  # model_params.tools: [{"type": "web_search"}] (billed extra)
    watermark: bool = False  # a watermark switch (default off)
    backgrounds: tuple = ()  # "opaque" / "transparent" (transparent: one PNG reference with alpha)
    provider_ids: dict = field(default_factory=dict)  # the model's id at other providers
    prices: dict = field(default_factory=dict)  # provider → dollars per image produced (settings override)

    @property
    def short_name(self):
        return self.name.removeprefix("Seedream ")

    def offers(self, quality):
        return quality in self.qualities


MODELS = {
    model.id: model
    for model in (
        SeedreamModel(
            id=SD40, name="Seedream 4.0", strength="Fast, cheapest, strong on edits and references",
            qualities=("1K", "2K", "4K"), default_quality="2K",
            min_pixels=921_600, max_pixels=16_777_216, max_prompt_chars=2000, priorities=("standard", "fast"),
            provider_ids={"byteplus": "seedream-4-0-250828"},
            prices={"evolink": Decimal("0.0222"), "byteplus": Decimal("0.03"), "sandbox": Decimal(0)},
        ),
        SeedreamModel(
            id=SD45, name="Seedream 4.5", strength="Sharper detail and text, 2K and 4K only",
            qualities=("2K", "4K"), default_quality="2K",
            min_pixels=3_686_400, max_pixels=16_777_216, max_prompt_chars=2000, priorities=("standard",),
            provider_ids={"byteplus": "seedream-4-5-251128"},
            prices={"evolink": Decimal("0.035"), "sandbox": Decimal(0)},
        ),
        SeedreamModel(
            id=SD50_LITE, name="Seedream 5.0 Lite", strength="Newest, can search the web for facts",
            # ⚠ some copies also list 4K; the narrower rule (2K, 3K) is taken, and with it the
            # pixel ceiling: 3K square is 3072² = 9,437,184.
            qualities=("2K", "3K"), default_quality="2K",
            min_pixels=3_686_400, max_pixels=9_437_184, max_prompt_chars=2000, priorities=("standard",),
            output_formats=("png", "jpeg"), web_search=True,
            provider_ids={"byteplus": "seedream-5-0-260128"},
            prices={"evolink": Decimal("0.032"), "sandbox": Decimal(0)},
        ),
        SeedreamModel(
            id=SD50_PRO, name="Seedream 5.0 Pro", strength="Best quality, one image, transparent backgrounds",
            qualities=("1K", "1.5K", "2K"), default_quality="1K",
            min_pixels=921_600, max_pixels=4_624_220, max_prompt_chars=4000, priorities=("standard", "fast"),
            max_images=1, sends_n=False,
            output_formats=("png", "jpeg"), watermark=True, backgrounds=("opaque", "transparent"),
            provider_ids={"byteplus": "seedream-5-0-pro-260628"},
            # EvoLink's price for Pro is not published: it is a setting, with no default.
            prices={"sandbox": Decimal(0)},
        ),
    )
}
QUALITIES = ("1K", "1.5K", "2K", "3K", "4K")  # every tier any model offers, in order


def get(model_id):
    return MODELS.get(model_id)


def price(model_id, provider, quality, overrides):
    """Dollars per image of `model_id` at `provider` for `quality`, or None when nobody set one
    (the provider then does not serve the model). `overrides` (from settings) are keyed
    "provider:model:quality", "provider:model" or "provider", the most specific first."""
    for key in (f"{provider}:{model_id}:{quality}", f"{provider}:{model_id}", provider):
        if key in overrides:
            return overrides[key]
    model = MODELS.get(model_id)
    return model.prices.get(provider) if model else None


def rules():
    """Each model's rules for the studio's scripts (the same values the server checks)."""
    return {
        model.id: {
            "name": model.name,
            "shortName": model.short_name,
            "strength": model.strength,
            "qualities": list(model.qualities),
            "defaultQuality": model.default_quality,
            "priorities": list(model.priorities),
            "pixels": [model.min_pixels, model.max_pixels],
            "maxPromptChars": model.max_prompt_chars,
            "maxImages": model.max_images,
            "extras": {
                "output_format": list(model.output_formats),
                "web_search": model.web_search,
                "watermark": model.watermark,
                "background": list(model.backgrounds),
            },
        }
        for model in MODELS.values()
    }

"""The generation settings of SPEC §2 and §7: ratios, qualities, pixel sizes, limits, and the words
of every rule. What differs between models is in gallery/catalog.py."""

from gallery import catalog

RATIOS = ["auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "9:21"]
QUALITIES = list(catalog.QUALITIES)
PRIORITIES = [("standard", "Standard (better quality, slower)"), ("fast", "Fast")]
DEFAULT_MODEL = catalog.SD40  # settings.DEFAULT_MODEL may name another

# ByteDance's Seedream 4 table for 1K, 2K and 4K, plus our own rows where nothing is published:
# 5:4 and 4:5 exact; 9:21 is 21:9 turned; 1.5K is 2K × 0.75 and 3K the largest size of the 2K
# shape within 3072² pixels (5.0 Lite's ceiling), both in multiples of 16.
PIXEL_SIZES = {
    "1:1": {"1K": (1024, 1024), "1.5K": (1536, 1536), "2K": (2048, 2048), "3K": (3072, 3072), "4K": (4096, 4096)},
    "4:3": {"1K": (1152, 864), "1.5K": (1728, 1296), "2K": (2304, 1728), "3K": (3456, 2592), "4K": (4704, 3520)},
    "3:4": {"1K": (864, 1152), "1.5K": (1296, 1728), "2K": (1728, 2304), "3K": (2592, 3456), "4K": (3520, 4704)},
    "16:9": {"1K": (1312, 736), "1.5K": (2144, 1200), "2K": (2848, 1600), "3K": (4096, 2288), "4K": (5504, 3040)},
    "9:16": {"1K": (736, 1312), "1.5K": (1200, 2144), "2K": (1600, 2848), "3K": (2288, 4096), "4K": (3040, 5504)},
    "3:2": {"1K": (1248, 832), "1.5K": (1872, 1248), "2K": (2496, 1664), "3K": (3744, 2496), "4K": (4992, 3328)},
    "2:3": {"1K": (832, 1248), "1.5K": (1248, 1872), "2K": (1664, 2496), "3K": (2496, 3744), "4K": (3328, 4992)},
    "21:9": {"1K": (1568, 672), "1.5K": (2352, 1008), "2K": (3136, 1344), "3K": (4688, 2000), "4K": (6240, 2656)},
    "9:21": {"1K": (672, 1568), "1.5K": (1008, 2352), "2K": (1344, 3136), "3K": (2000, 4688), "4K": (2656, 6240)},
    "5:4": {"1K": (1120, 896), "1.5K": (1680, 1344), "2K": (2240, 1792), "3K": (3360, 2688), "4K": (4480, 3584)},
    "4:5": {"1K": (896, 1120), "1.5K": (1344, 1680), "2K": (1792, 2240), "3K": (2688, 3360), "4K": (3584, 4480)},
}

MAX_PROMPT_CHARS = max(model.max_prompt_chars for model in catalog.MODELS.values())  # per model in catalog
MAX_REFERENCES = 10
MAX_REFERENCE_BYTES = 10 * 1024 * 1024
MIN_REFERENCE_SIDE = 14
MAX_REFERENCE_SIDE = 6000
MAX_IMAGES = 15  # n, and references + n
MIN_REFERENCE_ASPECT, MAX_REFERENCE_ASPECT = 1 / 3, 3
MIN_CUSTOM_ASPECT, MAX_CUSTOM_ASPECT = 1 / 16, 16

# The image formats the studio stores, by Pillow's name: content type and file extension.
IMAGE_FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}
REFERENCE_FORMATS = tuple(IMAGE_FORMATS)  # references may be any of them (SPEC §2)
UPSTREAM_FORMATS = ("JPEG", "PNG")  # what upstreams take as references (WEBP is converted)


def content_type(image_format):
    return IMAGE_FORMATS.get(image_format, ("application/octet-stream",))[0]


def extension(image_format):
    return IMAGE_FORMATS[image_format][1] if image_format in IMAGE_FORMATS else ".bin"


def format_of(content_type_or_name):
    """The format named by a content type ("image/png") or a file name ("x.png"), else None."""
    value = content_type_or_name.lower()
    return next(
        (name for name, (kind, ext) in IMAGE_FORMATS.items() if value == kind or value.endswith(ext)), None
    )
# A whole request: ten references at the limit plus room for the form's fields. Anything larger
# is refused before it is read (a 300 MB body used to be read in full).
MAX_REQUEST_BYTES = MAX_REFERENCES * MAX_REFERENCE_BYTES + 1024 * 1024
# More files than this in one request is not a studio form; up to it, the form says what is wrong.
MAX_REQUEST_FILES = 2 * MAX_REFERENCES
MAX_REQUEST_FIELDS = 600  # a gallery selection of 500 images and a few more fields


def pixel_size(ratio, quality):
    """(width, height) for a ratio and quality, or None for `auto` (the model decides)."""
    return PIXEL_SIZES.get(ratio, {}).get(quality)


def nearest_ratio(width, height):
    """The table's ratio closest to width/height (used by the sandbox for `auto`)."""
    def aspect(ratio):
        w, h = PIXEL_SIZES[ratio]["2K"]
        return w / h

    return min(PIXEL_SIZES, key=lambda r: abs(aspect(r) - width / height))


# The words of every rule, shared by the server (gallery/forms/studio.py) and the browser
# (static/gallery/studio-rules.js, through the "studio-rules" JSON in the page): one text per rule.
# Placeholders are {name}; numbers come formatted ("2,000").
MESSAGES = {
    "prompt_blank": "Write a prompt: describe the image you want.",
    "prompt_too_long": "The prompt is {length} characters long; {model} takes at most {limit}. "
    "Shorten it by {over} {characters}.",
    "prompt_control": "The prompt contains an invisible control character (U+{code}, character {position}). "
    "Remove it and try again.",
    "too_many_references": "You added {count} reference images; the limit is {limit}. Remove {over}.",
    "reference_too_big": "“{name}” is {size}; reference images can be at most {limit} ({limit_bytes} bytes) each.",
    "reference_unreadable": "“{name}”: This file is not an image we can read. Use a JPG, PNG or WEBP image.",
    "reference_format": "“{name}” is a {format} image; reference images must be JPG, PNG or WEBP.",
    "reference_sides": "“{name}” is {width}×{height} pixels; each side must be between {min_side} and {max_side} pixels.",
    "reference_aspect": "“{name}” is {width}×{height} pixels, too narrow or too wide: width divided by height "
    "must be between 1/3 and 3.",
    "n_range": "Choose between 1 and {max} images.",
    "one_image": "{model} makes one image per task: set the number of images to 1.",
    "too_many_images": "{count} reference image{s} + {n} images = {total}, but together they can be at most "
    "{max}. With {count} reference{s}, ask for at most {left} images.",
    "custom_format": "Write the custom size as WIDTHxHEIGHT, for example 1920x1080.",
    "custom_pixels": "{width}×{height} is {pixels} pixels; {model} takes custom sizes of {min_pixels} to "
    "{max_pixels} pixels.",
    "custom_aspect": "{width}×{height} is too narrow or too wide: width divided by height must be between 1/16 and 16.",
    "quality_not_offered": "{model} has no {quality} quality: choose {choices}.",
    "priority_not_offered": "{model} takes only the {choices} priority.",
    "extra_not_offered": "{model} has no {extra} setting: it is for {models} only.",
    "transparent_needs_png": "A transparent background needs exactly one PNG reference image with transparency "
    "({found}).",
    "compare_count": "Pick 2 to 4 models to compare (you picked {count}).",
    "model_unavailable": "No provider on this studio offers {model} yet. Pick another model, or ask whoever "
    "runs the studio to set a price for it.",
    "team_budget": "This would cost {cost}, and the team has {left} left of its {budget} budget for {month}. "
    "An owner can raise the budget on the Usage page.",
    "member_cap": "This would cost {cost}, and you have {left} left of the {cap} each member may spend in {month}. "
    "An owner can raise the cap.",
    # In the browser only: a setting the newly chosen model cannot take is changed, and said so.
    "switched_quality": "{model} has no {quality}: switched to {new}.",
    "switched_priority": "{model} takes only the {new} priority: switched to it.",
    "switched_n": "{model} makes one image per task: set to 1.",
    "switched_extra": "{model} has no {extra} setting: cleared.",
}


def sent_prompt(prompt, n, ask_for_n):
    """The prompt as sent upstream: n is an upper bound, so we ask for n images in words."""
    if ask_for_n and n > 1:
        return f"{prompt}\n\nGenerate {n} different images."
    return prompt


def say(key, **values):
    return MESSAGES[key].format(**values)


def studio_rules():
    """What the studio page's script needs to mirror the server's checks, with the same words."""
    return {
        "maxPromptChars": MAX_PROMPT_CHARS,
        "maxReferences": MAX_REFERENCES,
        "maxReferenceBytes": MAX_REFERENCE_BYTES,
        "minReferenceSide": MIN_REFERENCE_SIDE,
        "maxReferenceSide": MAX_REFERENCE_SIDE,
        "referenceAspect": [MIN_REFERENCE_ASPECT, MAX_REFERENCE_ASPECT],
        "maxImages": MAX_IMAGES,
        "defaultModel": DEFAULT_MODEL,
        "customAspect": [MIN_CUSTOM_ASPECT, MAX_CUSTOM_ASPECT],
        "referenceTypes": [content_type(name) for name in REFERENCE_FORMATS],
        "pixelSizes": PIXEL_SIZES,
        "models": catalog.rules(),
        "messages": MESSAGES,
    }
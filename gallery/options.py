"""The generation settings of SPEC §2 and §7: ratios, qualities, pixel sizes, limits."""

RATIOS = ["auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
QUALITIES = ["1K", "2K", "4K"]
PRIORITIES = [("standard", "Standard (better quality, slower)"), ("fast", "Fast")]

# ByteDance's Seedream 4 table, plus our own exact 5:4 and 4:5 rows.
PIXEL_SIZES = {
    "1:1": {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    "4:3": {"1K": (1152, 864), "2K": (2304, 1728), "4K": (4704, 3520)},
    "3:4": {"1K": (864, 1152), "2K": (1728, 2304), "4K": (3520, 4704)},
    "16:9": {"1K": (1312, 736), "2K": (2848, 1600), "4K": (5504, 3040)},
    "9:16": {"1K": (736, 1312), "2K": (1600, 2848), "4K": (3040, 5504)},
    "3:2": {"1K": (1248, 832), "2K": (2496, 1664), "4K": (4992, 3328)},
    "2:3": {"1K": (832, 1248), "2K": (1664, 2496), "4K": (3328, 4992)},
    "21:9": {"1K": (1568, 672), "2K": (3136, 1344), "4K": (6240, 2656)},
    "5:4": {"1K": (1120, 896), "2K": (2240, 1792), "4K": (4480, 3584)},
    "4:5": {"1K": (896, 1120), "2K": (1792, 2240), "4K": (3584, 4480)},
}

MAX_PROMPT_CHARS = 2000
MAX_REFERENCES = 10
MAX_REFERENCE_BYTES = 10 * 1024 * 1024
MIN_REFERENCE_SIDE = 14
MAX_REFERENCE_SIDE = 6000
MAX_IMAGES = 15  # n, and references + n
MIN_CUSTOM_PIXELS = 1280 * 720
MAX_CUSTOM_PIXELS = 4096 * 4096
REFERENCE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
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

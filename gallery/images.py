"""Image work without models: facts about a file, copies for the upstream, thumbnails,
capped reads of downloads, and the sandbox's rendered images (SPEC §4, §7, §9)."""

import colorsys
import hashlib
import io
import json
import math
import random
import struct
import tempfile
import textwrap
import unicodedata
import warnings
import zlib
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont, ImageOps

# Above the largest reference (6000 × 6000 = 36 M) and every output size, far below what would
# exhaust memory; Pillow's own guard only starts at 89 M.
MAX_PIXELS = 40_000_000
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
THUMBNAIL_QUALITY = 80
ORIENTATION = 0x0112
# Only common raster decoders: Pillow would otherwise also try EPS (which runs Ghostscript)
# and dozens of rarely used plugins on whatever a user uploads.
DECODERS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
JPEG_FORMATS = ("JPEG", "MPO")  # MPO is a JPEG with extra frames, as many phones write them

NOT_AN_IMAGE = "This file is not an image we can read."
TOO_LARGE_TO_DECODE = "This image is too large to decode safely."


class InvalidImage(Exception):
    """The bytes do not decode as an image, or would be unsafe to decode."""


class TooLarge(Exception):
    """A stream went past its byte limit; it was not read to the end."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: "JPEG", "PNG", "WEBP", "GIF", …
    width: int  # as stored, before any EXIF orientation
    height: int
    bytes: int
    sha256: str


@contextmanager
def _decoding():
    """Pillow's decompression-bomb guard as errors, and every decoding failure as InvalidImage."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except InvalidImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise InvalidImage(TOO_LARGE_TO_DECODE) from error
        except Exception as error:  # Pillow's plugins raise many types on malformed input
            raise InvalidImage(NOT_AN_IMAGE) from error


def _open(source):
    """A lazily opened image; its size is checked from the header, before any pixel is decoded."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    im = Image.open(fp, formats=DECODERS)
    if im.width * im.height > MAX_PIXELS:
        im.close()
        raise InvalidImage(TOO_LARGE_TO_DECODE)
    return im


def inspect_image(data: bytes) -> ImageInfo:
    """The facts of an image, decided by decoding it completely; raises InvalidImage."""
    with _decoding():
        with _open(data) as im:
            image_format = im.format
            im.verify()
        # verify() leaves the image unusable and misses truncated pixel data: decode it again.
        with _open(data) as im:
            im.load()
            width, height = im.size
    return ImageInfo(
        format="JPEG" if image_format in JPEG_FORMATS else image_format,
        width=width,
        height=height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def prepare_for_upstream(data: bytes) -> tuple[bytes, str]:
    """(bytes, content type) of a reference as the upstream takes it: JPEG or PNG, upright,
    without EXIF, GPS, XMP, comments or text chunks, and keeping the ICC colour profile."""
    out = io.BytesIO()
    with _decoding(), _open(data) as im:
        icc_profile = im.info.get("icc_profile")
        upright = im.getexif().get(ORIENTATION, 1) == 1
        if im.format in JPEG_FORMATS and upright:
            # "keep" reuses the file's quantization tables and subsampling: no visible loss.
            # Metadata is only written when passed, except the comment, which Pillow copies.
            im.save(out, "JPEG", quality="keep", icc_profile=icc_profile, comment=b"")
            return out.getvalue(), "image/jpeg"
        if im.format in JPEG_FORMATS:
            ImageOps.exif_transpose(im).save(out, "JPEG", quality=95, icc_profile=icc_profile, comment=b"")
            return out.getvalue(), "image/jpeg"
        # Everything else becomes a PNG, which is lossless (WEBP's alpha included). Level 3 is
        # about 3× faster than the default 6 on a 6000 × 6000 photo, for ~10 % more bytes.
        upright_im = im if upright else ImageOps.exif_transpose(im)
        upright_im.save(out, "PNG", icc_profile=icc_profile, compress_level=3)
        return out.getvalue(), "image/png"


def make_thumbnail(data_or_file, max_side: int = 512) -> bytes:
    """A WebP thumbnail (longest side at most max_side, never enlarged) of bytes or a binary file."""
    with _decoding(), _open(data_or_file) as im:
        small = _shrink(im, max_side)
    out = io.BytesIO()
    small.save(out, "WEBP", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def fit_within(data: bytes, max_side: int, max_bytes: int) -> bytes:
    """The image itself if it already fits, else a JPEG copy that does: longest side at most
    max_side, at most max_bytes. Used when a (possibly 4K, 30 MB) result becomes a reference."""
    info = inspect_image(data)
    if max(info.width, info.height) <= max_side and info.bytes <= max_bytes:
        return data
    with _decoding(), _open(data) as im:
        im = _shrink(im, max_side).convert("RGB")
    for quality in (92, 85, 75, 60):
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality)
        if out.tell() <= max_bytes:
            break
    return out.getvalue()


def _shrink(im, max_side):
    """An upright RGB or RGBA copy of an opened image that fits in max_side × max_side."""
    if im.mode in ("1", "P", "PA"):
        # Resizing these modes would pick nearest pixels; convert while the image is still whole.
        im = im.convert("L" if im.mode == "1" else "RGBA" if im.has_transparency_data else "RGB")
    # thumbnail() asks libjpeg to decode at 1/2 … 1/8 scale (draft), then reduce()s by whole
    # factors before the final filter, so a big JPEG is never decoded at full size.
    im.thumbnail((max_side, max_side), reducing_gap=2.0)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit samples would clip to white when converted directly.
        im = im.convert("I").point(lambda value: value / 256).convert("L")
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    return im


def read_capped(chunks: Iterable[bytes], max_bytes: int) -> tuple[tempfile.SpooledTemporaryFile, int, str]:
    """(file rewound to 0, size, SHA-256 hex) of a stream of byte chunks; raises TooLarge as soon
    as the stream passes max_bytes. Small files stay in memory, larger ones spill to disk."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"The file is larger than the limit of {_human_bytes(max_bytes)}.")
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, size, digest.hexdigest()


def _human_bytes(count):
    mib = 1024 * 1024
    return f"{count // mib} MB" if count % mib == 0 else f"{count:,} bytes"


# The sandbox provider's pictures: what was asked for, drawn so nobody mistakes it for a real one.


def render_sandbox_image(
    prompt: str, width: int, height: int, references: list[bytes], index: int, n: int
) -> bytes:
    """PNG bytes of exactly width × height showing the prompt, the references and a SANDBOX mark;
    the same inputs always give the same bytes."""
    rng = random.Random(hashlib.sha256(f"{index}\0{prompt}".encode()).digest())
    canvas = _gradient(rng, width, height)
    draw = ImageDraw.Draw(canvas)
    unit = min(width, height)
    margin = unit // 24

    _watermark(canvas, "SANDBOX")

    caption_font = ImageFont.load_default(size=max(12, unit // 32))
    draw.text((margin, margin), f"image {index + 1} of {n} · {width} x {height}", font=caption_font,
              fill="white", stroke_width=max(1, unit // 400), stroke_fill="black")
    _badge(draw, "SANDBOX", caption_font, right=width - margin, top=margin, padding=unit // 80)

    strip = height // 6 if references else 0
    top = margin * 2 + caption_font.size
    bottom = height - margin - (strip + margin if strip else 0)
    _prompt_text(draw, prompt, left=margin, top=top, right=width - margin, bottom=bottom, unit=unit)

    if references:
        _reference_strip(canvas, references, margin=margin, side=strip, bottom=height - margin)

    out = io.BytesIO()
    # Level 1 keeps a 4096 × 4096 encode well under a second; these files are throwaway.
    canvas.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _gradient(rng, width, height):
    """A soft colour field: a 3 × 3 grid of related colours smoothly enlarged to full size."""
    hue = rng.random()
    spread = rng.uniform(0.12, 0.35)
    grid = Image.new("RGB", (3, 3))
    for y in range(3):
        for x in range(3):
            h = (hue + spread * (x + y) / 4 + rng.uniform(-0.03, 0.03)) % 1
            r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.45, 0.7), rng.uniform(0.55, 0.8))
            grid.putpixel((x, y), (round(r * 255), round(g * 255), round(b * 255)))
    return grid.resize((width, height), Image.Resampling.BICUBIC)


def _watermark(canvas, text):
    """Large translucent text along the diagonal."""
    width, height = canvas.size
    diagonal = math.hypot(width, height)
    font = ImageFont.load_default(size=max(12, int(diagonal / 9)))
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=80)
    angle = math.degrees(math.atan2(height, width))
    mask = mask.rotate(angle, expand=True, resample=Image.Resampling.BILINEAR)
    canvas.paste("white", ((width - mask.width) // 2, (height - mask.height) // 2), mask)


def _badge(draw, text, font, right, top, padding):
    left, _, text_right, bottom = draw.textbbox((0, 0), text, font=font)
    x = right - (text_right - left) - 2 * padding
    draw.rounded_rectangle((x, top, right, top + bottom + 2 * padding), radius=padding, fill=(200, 30, 45))
    draw.text((x + padding - left, top + padding), text, font=font, fill="white")


def _prompt_text(draw, prompt, left, top, right, bottom, unit):
    """The prompt's words, centred, in the largest size that fits (truncated at the smallest)."""
    # Pillow's built-in font has ASCII only: "café" is shown as "cafe" rather than "caf□".
    words = "".join(c for c in unicodedata.normalize("NFKD", prompt) if not unicodedata.combining(c)).split()
    size = max(12, unit // 12)
    while True:
        font = ImageFont.load_default(size=size)
        line_height = round(size * 1.25)
        lines = _wrap(words, font, right - left)
        fits = max(1, (bottom - top) // line_height)
        if len(lines) <= fits or size <= max(12, unit // 48):
            break
        size = int(size * 0.85)
    if len(lines) > fits:
        lines = lines[: fits - 1] + [lines[fits - 1] + " …"]
    y = top + ((bottom - top) - len(lines) * line_height) // 2
    for line in lines:
        x = left + ((right - left) - font.getlength(line)) / 2
        draw.text((x, y), line, font=font, fill="white", stroke_width=max(1, size // 16),
                  stroke_fill=(20, 20, 30))
        y += line_height


def _wrap(words, font, max_width):
    lines, line = [], ""
    for word in words:
        if font.getlength(word) > max_width:
            # A word wider than the line (a URL, say) is cut into pieces that fit.
            pieces = textwrap.wrap(word, max(1, int(max_width // font.getlength("W"))))
        else:
            pieces = [word]
        for piece in pieces:
            candidate = f"{line} {piece}" if line else piece
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = piece
            else:
                line = candidate
    return lines + [line] if line else lines


def _reference_strip(canvas, references, margin, side, bottom):
    """The references as framed thumbnails in a row, left to right in their order."""
    count = len(references)
    side = min(side, (canvas.width - margin * (count + 1)) // count)
    border = max(1, side // 40)
    draw = ImageDraw.Draw(canvas)
    x = margin
    for data in references:
        box = (x, bottom - side, x + side, bottom)
        draw.rectangle(box, fill=(250, 250, 250))
        try:
            with _decoding(), _open(data) as im:
                thumb = _shrink(im, side - 2 * border)
        except InvalidImage:
            draw.line(box, fill=(200, 30, 45), width=border * 2)
        else:
            position = (x + (side - thumb.width) // 2, bottom - side + (side - thumb.height) // 2)
            canvas.paste(thumb, position, thumb if thumb.mode == "RGBA" else None)
        x += side + margin

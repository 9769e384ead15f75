"""Image work without models: facts about a file, copies for the upstream, thumbnails,
capped reads of downloads, and the sandbox's rendered images (SPEC §4, §7, §9)."""

import colorsys
import hashlib
import io
import json
import math
import random
import re
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
from email.utils import format_datetime
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


def clean_reference(data: bytes, info: ImageInfo) -> tuple[bytes, ImageInfo]:
    """(bytes, facts) of an uploaded reference as the studio stores it: upright, and without the
    camera's metadata (EXIF, GPS, XMP, IPTC, comments, text chunks), keeping the colour profile.

    An upright file loses its metadata blocks by splicing, every byte of image data kept as it
    was; a file that needs turning by its EXIF orientation is re-encoded upright (JPEG at
    quality 95, PNG and WEBP losslessly). `info` is inspect_image's for `data`.
    """
    with _decoding(), _open(data) as im:
        orientation = im.getexif().get(ORIENTATION, 1)
    try:
        if orientation in (1, None):
            clean = {"JPEG": _jpeg_stripped, "PNG": _png_stripped, "WEBP": _webp_stripped}[info.format](data)
        else:
            clean = _upright_copy(data, info.format)
    except (IndexError, KeyError, struct.error) as error:
        raise InvalidImage(NOT_AN_IMAGE) from error
    with _decoding(), _open(clean) as im:
        width, height = im.size
    return clean, ImageInfo(
        format=info.format, width=width, height=height, bytes=len(clean),
        sha256=hashlib.sha256(clean).hexdigest(),
    )


def _upright_copy(data, image_format):
    out = io.BytesIO()
    with _decoding(), _open(data) as im:
        icc_profile = im.info.get("icc_profile")
        upright = ImageOps.exif_transpose(im)
        if image_format == "JPEG":
            upright.save(out, "JPEG", quality=95, icc_profile=icc_profile, comment=b"")
        elif image_format == "WEBP":
            upright.save(out, "WEBP", lossless=True, icc_profile=icc_profile)
        else:
            upright.save(out, "PNG", icc_profile=icc_profile, compress_level=6)
    return out.getvalue()


# JPEG segments kept: JFIF/JFXX headers, the ICC profile and Adobe's colour-transform flag. Every
# other APPn (EXIF, XMP, IPTC, MPF, …) and comments go; so do the extra frames after the first
# image's end (a phone's MPO carries more pictures, each with its own EXIF).
def _jpeg_kept(marker, payload):
    if marker == 0xE0:
        return payload.startswith((b"JFIF\0", b"JFXX\0"))
    if marker == 0xE2:
        return payload.startswith(b"ICC_PROFILE\0")
    return marker == 0xEE


def _jpeg_stripped(data):
    if data[:2] != b"\xff\xd8":
        raise InvalidImage(NOT_AN_IMAGE)
    view, out, position = memoryview(data), [b"\xff\xd8"], 2
    while True:
        while data[position] == 0xFF and data[position + 1] == 0xFF:
            position += 1  # fill bytes before a marker
        if data[position] != 0xFF:
            raise InvalidImage(NOT_AN_IMAGE)
        marker = data[position + 1]
        if marker == 0xD9:  # end of image
            out.append(b"\xff\xd9")
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(view[position : position + 2])
            position += 2
            continue
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        end = position + 2 + length
        if length < 2 or end > len(data):
            raise InvalidImage(NOT_AN_IMAGE)
        if (0xE0 <= marker <= 0xEF or marker == 0xFE) and not _jpeg_kept(marker, data[position + 4 : end]):
            position = end
            continue
        out.append(view[position:end])
        position = end
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
            scan_end = position
            while True:
                scan_end = data.index(b"\xff", scan_end)
                following = data[scan_end + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    scan_end += 2  # a stuffed 0xFF byte or a restart marker: still image data
                    continue
                break
            out.append(view[position:scan_end])
            position = scan_end


PNG_DROPPED = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def _png_stripped(data):
    if not data.startswith(PNG_SIGNATURE):
        raise InvalidImage(NOT_AN_IMAGE)
    view, out, position = memoryview(data), [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while True:
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if end > len(data):
            raise InvalidImage(NOT_AN_IMAGE)
        if kind not in PNG_DROPPED:
            out.append(view[position:end])
        if kind == b"IEND":
            return b"".join(out)
        position = end


def _webp_stripped(data):
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InvalidImage(NOT_AN_IMAGE)
    riff_end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    body, position = [], 12
    while position + 8 <= riff_end:
        fourcc, length = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        end = position + 8 + length + length % 2
        if position + 8 + length > riff_end:
            raise InvalidImage(NOT_AN_IMAGE)
        if fourcc == b"VP8X":
            flags = bytearray(data[position + 8 : position + 18])
            flags[0] &= ~0x0C & 0xFF  # no EXIF (0x08), no XMP (0x04)
            body.append(_riff_chunk(b"VP8X", bytes(flags)))
        elif fourcc not in (b"EXIF", b"XMP "):
            body.append(data[position:min(end, riff_end)])
        position = end
    payload = b"WEBP" + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def make_thumbnail(data_or_file, max_side: int = 512) -> bytes:
    """A WebP thumbnail (longest side at most max_side, never enlarged) of bytes or a binary file."""
    with _decoding(), _open(data_or_file) as im:
        small = _shrink(im, max_side)
    return _webp(small)


def check_with_thumbnail(fp, size: int, sha256: str, max_side: int = 512) -> tuple[ImageInfo, bytes]:
    """(facts, WebP thumbnail) of a downloaded image file, decoding it once.

    The header gives format and size (and the pixel limit), a PNG's chunk checksums are verified
    without inflating, and the decode that makes the thumbnail is the proof that the pixel data
    decodes: a truncated or corrupt file raises InvalidImage, as `inspect_image` would. Decoding
    a 4K result twice was half the time of storing it (bench/store.py).
    """
    with _decoding():
        fp.seek(0)
        with _open(fp) as im:
            image_format = im.format
            if image_format == "PNG":
                im.verify()
        fp.seek(0)
        with _open(fp) as im:
            width, height = im.size
            small = _shrink(im, max_side)
    info = ImageInfo(
        format="JPEG" if image_format in JPEG_FORMATS else image_format,
        width=width, height=height, bytes=size, sha256=sha256,
    )
    return info, _webp(small)


def _webp(im):
    out = io.BytesIO()
    im.save(out, "WEBP", quality=THUMBNAIL_QUALITY)
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


# Downloads that explain themselves: the original file with the prompt and settings written into
# its own metadata (SPEC §4). Nothing is decoded or re-encoded: new metadata blocks are spliced
# between byte ranges of the original, so every byte of image data stays as stored and a file of
# any size streams through a small, fixed buffer.

COPY_CHUNK_BYTES = 256 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_SEGMENT_MAX = 65533  # a marker segment's 16-bit length counts its own two bytes
MAX_METADATA_BYTES = 4 * 1024 * 1024  # an existing metadata block larger than this is left alone
MAX_BLOCKS = 10_000  # chunks or segments walked before giving up on a file
AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_NAMESPACES = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "seedream": "urn:seedream-studio:1.0:",
}


@dataclass(frozen=True)
class Metadata:
    """What a downloaded file says about itself."""

    prompt: str
    author: str
    created: datetime  # aware, in the instance's time zone
    settings: dict = field(default_factory=dict)  # everything else (JSON-serialisable)
    software: str = "Seedream Studio"

    def settings_json(self, ascii_only=False):
        # EXIF's UserComment is declared ASCII: there non-ASCII characters become \u escapes.
        return json.dumps(self.settings, ensure_ascii=ascii_only, separators=(", ", ": "))


@dataclass(frozen=True)
class Spliced:
    """A file made of new bytes and (start, end) byte ranges of an original, in order."""

    pieces: tuple

    @property
    def size(self):
        return sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in self.pieces)

    def chunks(self, fp, chunk_size=COPY_CHUNK_BYTES):
        """The file's bytes, the original's ranges read from fp (seekable, binary) chunk by chunk."""
        for piece in self.pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            start, end = piece
            fp.seek(start)
            while start < end:
                data = fp.read(min(chunk_size, end - start))
                if not data:
                    raise OSError("The stored file is shorter than it was.")
                start += len(data)
                yield data


def with_metadata(fp, size: int, image_format: str, meta: Metadata) -> Spliced:
    """The original (fp: seekable binary file of `size` bytes) with `meta` written into it: text
    chunks and XMP in a PNG; EXIF and XMP in a JPEG or WebP. Existing EXIF fields and XMP are kept.
    Raises InvalidImage when the file's layout is not one we can splice safely."""
    splicers = {"PNG": _png_with_metadata, "JPEG": _jpeg_with_metadata, "WEBP": _webp_with_metadata}
    splice = splicers.get(image_format)
    if splice is None:
        raise InvalidImage(f"Metadata cannot be written into {image_format} files.")
    try:
        return Spliced(tuple(_coalesce(splice(fp, size, meta))))
    except (struct.error, zlib.error, EOFError) as error:
        raise InvalidImage(NOT_AN_IMAGE) from error


def _coalesce(pieces):
    """Joins neighbouring ranges and drops empty pieces."""
    out = []
    for piece in pieces:
        if isinstance(piece, bytes):
            if piece:
                out.append(piece)
        elif piece[1] > piece[0]:
            if out and not isinstance(out[-1], bytes) and out[-1][1] == piece[0]:
                out[-1] = (out[-1][0], piece[1])
            else:
                out.append(piece)
    return out


def _read_at(fp, position, count):
    fp.seek(position)
    data = fp.read(count)
    if len(data) < count:
        raise InvalidImage(NOT_AN_IMAGE)
    return data


XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text):
    # XML 1.0 forbids most control characters; prompts never hold them, API input might.
    return escape(XML_FORBIDDEN.sub("", text), {'"': "&quot;"})


def _xmp_description(meta, full=True):
    """One rdf:Description; without `full`, only our own namespace (to add beside existing XMP
    without repeating properties it may already have)."""
    props = []
    if full:
        props += [
            "<dc:description><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{_xml_text(meta.prompt)}</rdf:li>'
            "</rdf:Alt></dc:description>",
            f"<dc:creator><rdf:Seq><rdf:li>{_xml_text(meta.author)}</rdf:li></rdf:Seq></dc:creator>",
            f"<xmp:CreateDate>{meta.created.isoformat(timespec='seconds')}</xmp:CreateDate>",
            f"<xmp:CreatorTool>{_xml_text(meta.software)}</xmp:CreatorTool>",
            f"<Iptc4xmpExt:DigitalSourceType>{AI_GENERATED}</Iptc4xmpExt:DigitalSourceType>",
        ]
    props += [
        f"<seedream:Prompt>{_xml_text(meta.prompt)}</seedream:Prompt>",
        f"<seedream:Settings>{_xml_text(meta.settings_json())}</seedream:Settings>",
    ]
    names = XMP_NAMESPACES if full else {"seedream": XMP_NAMESPACES["seedream"]}
    declarations = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in names.items())
    return f'<rdf:Description rdf:about="" {declarations}>{"".join(props)}</rdf:Description>'


def _xmp_packet(meta):
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{_xmp_description(meta)}</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _merged_xmp(packet, meta):
    """The existing packet with our description added, or None when it does not look like XMP."""
    at = packet.rfind(b"</rdf:RDF>")
    if at < 0:
        return None
    return packet[:at] + _xmp_description(meta, full=False).encode() + packet[at:]


def _exif_block(meta, existing=None):
    """An EXIF block ("Exif\\0\\0" + TIFF) with our fields, keeping the other fields of `existing`."""
    exif = Image.Exif()
    if existing:
        exif.load(existing)
    stamp = meta.created.strftime("%Y:%m:%d %H:%M:%S")
    offset = meta.created.strftime("%z")
    exif[0x010E] = meta.prompt.encode()  # ImageDescription, in UTF-8 as today's readers expect
    exif[0x013B] = meta.author.encode()  # Artist
    exif[0x0131] = meta.software  # Software
    exif[0x0132] = stamp  # DateTime
    exif[0x9C9C] = meta.prompt.encode("utf-16-le") + b"\0\0"  # XPComment (Windows' "Comments")
    details = exif.get_ifd(0x8769)
    details[0x9003] = stamp  # DateTimeOriginal
    if offset:
        details[0x9011] = f"{offset[:3]}:{offset[3:]}"  # OffsetTimeOriginal
    details[0x9286] = b"ASCII\0\0\0" + meta.settings_json(ascii_only=True).encode("ascii")  # UserComment
    return _as_undefined(exif.tobytes(), 0x8769, 0x9286)


def _as_undefined(block, ifd_tag, tag):
    """Pillow writes bytes as BYTE; EXIF wants UserComment as UNDEFINED (same layout, other type)."""
    tiff = bytearray(block[6:])
    order = ">" if tiff[:2] == b"MM" else "<"

    def entries(offset):
        count = struct.unpack_from(order + "H", tiff, offset)[0]
        return (offset + 2 + 12 * i for i in range(count))

    for entry in entries(struct.unpack_from(order + "I", tiff, 4)[0]):
        if struct.unpack_from(order + "H", tiff, entry)[0] == ifd_tag:
            sub_ifd = struct.unpack_from(order + "I", tiff, entry + 8)[0]
            for sub_entry in entries(sub_ifd):
                if struct.unpack_from(order + "HH", tiff, sub_entry) == (tag, 1):
                    struct.pack_into(order + "H", tiff, sub_entry + 2, 7)
    return block[:6] + bytes(tiff)


def _safe_exif_block(meta, existing=None):
    """Our EXIF block, or None when an existing block cannot be read (it is then kept as it is)."""
    try:
        return _exif_block(meta, existing)
    except Exception:  # Pillow raises many types on malformed TIFF structures
        return None


# PNG: text chunks right after IHDR, where every reader finds them before the image data.


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_text(keyword, text):
    try:
        return _png_chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # iTXt: keyword, compression flag and method, language tag, translated keyword, UTF-8 text.
        return _png_chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode())


def _png_itxt_text(data):
    """The text of an iTXt chunk's payload, decompressed (within bounds) if needed."""
    keyword_end = data.index(b"\0")
    compressed = data[keyword_end + 1]
    language_end = data.index(b"\0", keyword_end + 3)
    translated_end = data.index(b"\0", language_end + 1)
    text = data[translated_end + 1 :]
    if compressed:
        inflater = zlib.decompressobj()
        text = inflater.decompress(text, MAX_METADATA_BYTES)
        if inflater.unconsumed_tail:
            raise InvalidImage(TOO_LARGE_TO_DECODE)
    return text


def _png_with_metadata(fp, size, meta):
    head = _read_at(fp, 0, 33)
    if head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR" or struct.unpack(">I", head[8:12])[0] != 13:
        raise InvalidImage(NOT_AN_IMAGE)
    xmp = None  # (start, end, packet) of an XMP chunk before the image data
    position = 33
    for _ in range(MAX_BLOCKS):
        length, kind = struct.unpack(">I4s", _read_at(fp, position, 8))
        end = position + 12 + length
        if end > size:
            raise InvalidImage(NOT_AN_IMAGE)
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"iTXt" and xmp is None and length <= MAX_METADATA_BYTES:
            data = _read_at(fp, position + 8, length)
            if data.startswith(PNG_XMP_KEYWORD + b"\0"):
                try:
                    xmp = (position, end, _png_itxt_text(data))
                except ValueError:
                    xmp = (position, end, b"")
        position = end
    texts = b"".join(
        _png_text(keyword, text)
        for keyword, text in (
            ("Description", meta.prompt),
            ("Author", meta.author),
            ("Creation Time", format_datetime(meta.created)),  # RFC 1123, as the PNG spec asks
            ("Software", meta.software),
            ("Comment", meta.settings_json()),
        )
    )
    if xmp is None:
        packet = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\0\0\0\0\0" + _xmp_packet(meta))
        return [(0, 33), texts + packet, (33, size)]
    merged = _merged_xmp(xmp[2], meta)
    if merged is None:
        return [(0, 33), texts, (33, size)]
    packet = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\0\0\0\0\0" + merged)
    return [(0, 33), texts, (33, xmp[0]), packet, (xmp[1], size)]


# JPEG: EXIF and XMP as APP1 segments after SOI (and after a JFIF APP0, which must come first).


def _jpeg_segment(payload):
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_with_metadata(fp, size, meta):
    if _read_at(fp, 0, 2) != b"\xff\xd8":
        raise InvalidImage(NOT_AN_IMAGE)
    segments = []  # (start, end, kind, payload) of the APPn and COM segments before the image data
    position = 2
    for _ in range(MAX_BLOCKS):
        marker = _read_at(fp, position, 4)
        if marker[0] != 0xFF:
            raise InvalidImage(NOT_AN_IMAGE)
        if not (0xE0 <= marker[1] <= 0xEF or marker[1] == 0xFE):
            break
        length = struct.unpack(">H", marker[2:])[0]
        end = position + 2 + length
        if length < 2 or end > size:
            raise InvalidImage(NOT_AN_IMAGE)
        kind = payload = None
        if marker[1] == 0xE1:
            payload = _read_at(fp, position + 4, length - 2)
            if payload.startswith(b"Exif\0\0"):
                kind = "exif"
            elif payload.startswith(JPEG_XMP_HEADER):
                kind = "xmp"
        elif marker[1] == 0xE0 and position == 2:
            kind = "jfif"
        segments.append((position, end, kind, payload))
        position = end
    else:
        raise InvalidImage(NOT_AN_IMAGE)

    old_exif = next((s for s in segments if s[2] == "exif"), None)
    old_xmp = next((s for s in segments if s[2] == "xmp"), None)
    exif = _safe_exif_block(meta, old_exif[3] if old_exif else None)
    if exif and len(exif) > JPEG_SEGMENT_MAX:
        exif = None
    if old_xmp:
        merged = _merged_xmp(old_xmp[3][len(JPEG_XMP_HEADER) :], meta)
        xmp = JPEG_XMP_HEADER + merged if merged else None
    else:
        xmp = JPEG_XMP_HEADER + _xmp_packet(meta)
    if xmp and len(xmp) > JPEG_SEGMENT_MAX:
        xmp = None

    pieces = [b"\xff\xd8"]
    rest = segments
    if segments and segments[0][2] == "jfif":
        pieces.append(segments[0][:2])
        rest = segments[1:]
    pieces.append((_jpeg_segment(exif) if exif else b"") + (_jpeg_segment(xmp) if xmp else b""))
    for segment in rest:
        replaced = (segment is old_exif and exif) or (segment is old_xmp and xmp)
        if not replaced:
            pieces.append(segment[:2])
    pieces.append((position, size))
    return pieces


# WebP: EXIF and XMP chunks at the end, announced by the extended-format VP8X chunk.


def _riff_chunk(fourcc, data):
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _webp_canvas(fp, chunk):
    """(width, height, has alpha) of a simple-format WebP, from its VP8 or VP8L bitstream header."""
    start, _, fourcc = chunk
    head = _read_at(fp, start + 8, 10)
    if fourcc == b"VP8 ":
        if head[3:6] != b"\x9d\x01\x2a":
            raise InvalidImage(NOT_AN_IMAGE)
        width, height = struct.unpack("<HH", head[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if head[0] != 0x2F:
        raise InvalidImage(NOT_AN_IMAGE)
    bits = struct.unpack("<I", head[1:5])[0]
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


def _webp_with_metadata(fp, size, meta):
    head = _read_at(fp, 0, 12)
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise InvalidImage(NOT_AN_IMAGE)
    riff_end = min(size, 8 + struct.unpack("<I", head[4:8])[0])
    chunks = []
    position = 12
    while position + 8 <= riff_end:
        if len(chunks) >= MAX_BLOCKS:
            raise InvalidImage(NOT_AN_IMAGE)
        header = _read_at(fp, position, 8)
        length = struct.unpack("<I", header[4:])[0]
        end = min(position + 8 + length + length % 2, riff_end)
        if position + 8 + length > riff_end:
            raise InvalidImage(NOT_AN_IMAGE)
        chunks.append((position, end, header[:4]))
        position = end
    if not chunks:
        raise InvalidImage(NOT_AN_IMAGE)

    def payload(chunk):
        length = chunk[1] - chunk[0] - 8
        return _read_at(fp, chunk[0] + 8, length) if length <= MAX_METADATA_BYTES else None

    old_exif = next((c for c in chunks if c[2] == b"EXIF"), None)
    old_xmp = next((c for c in chunks if c[2] == b"XMP "), None)
    exif = _safe_exif_block(meta, payload(old_exif) if old_exif else None)
    if old_xmp:
        existing = payload(old_xmp)
        xmp = _merged_xmp(existing.rstrip(b"\0"), meta) if existing else None
    else:
        xmp = _xmp_packet(meta)

    first = chunks[0]
    if first[2] == b"VP8X":
        flags = bytearray(_read_at(fp, first[0] + 8, 10))
        flags[0] |= (0x08 if exif else 0) | (0x04 if xmp else 0)
        body = [_riff_chunk(b"VP8X", bytes(flags))]
        kept = chunks[1:]
    elif first[2] in (b"VP8 ", b"VP8L"):
        width, height, alpha = _webp_canvas(fp, first)
        flags = (0x08 if exif else 0) | (0x04 if xmp else 0) | (0x10 if alpha else 0)
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = [_riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)]
        kept = chunks
    else:
        raise InvalidImage(NOT_AN_IMAGE)
    for chunk in kept:
        if not ((chunk is old_exif and exif) or (chunk is old_xmp and xmp)):
            body.append(chunk[:2])
    # WebP's EXIF chunk holds the TIFF data itself, without JPEG's "Exif\0\0" prefix.
    body.append(
        (_riff_chunk(b"EXIF", exif[6:]) if exif else b"") + (_riff_chunk(b"XMP ", xmp) if xmp else b"")
    )
    body_size = Spliced(tuple(body)).size
    return [b"RIFF" + struct.pack("<I", 4 + body_size) + b"WEBP", *body]

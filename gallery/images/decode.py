"""Reading images: facts about a file (type decided by content, size, hash), the checks of SPEC §9
(decompression bombs, truncated data), thumbnails, the copies stored for and sent to upstreams,
and capped reads of downloads."""

import hashlib
import io
import struct
import tempfile
import warnings
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from PIL import Image, ImageOps

# Above the largest reference (6000 × 6000 = 36 M) and every output size, far below what would
# exhaust memory; Pillow's own guard only starts at 89 M.
MAX_PIXELS = 40_000_000
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
THUMBNAIL_QUALITY = 80
# libwebp's effort, 0–6 (Pillow's default is 4). At 2 a 512 px thumbnail takes 14 ms instead of 51 ms
# and is ~6 % larger (bench/store.py): a 4K result's thumbnail is made once, and its store waits on it.
THUMBNAIL_METHOD = 2
ORIENTATION = 0x0112
# Only common raster decoders: Pillow would otherwise also try EPS (which runs Ghostscript)
# and dozens of rarely used plugins on whatever a user uploads.
DECODERS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
JPEG_FORMATS = ("JPEG", "MPO")  # MPO is a JPEG with extra frames, as many phones write them

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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
    has_alpha: bool = False  # any transparent pixel data (a transparent background needs it)


@contextmanager
def decoding():
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


def open_lazily(source):
    """A lazily opened image; its size is checked from the header, before any pixel is decoded."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    im = Image.open(fp, formats=DECODERS)
    if im.width * im.height > MAX_PIXELS:
        im.close()
        raise InvalidImage(TOO_LARGE_TO_DECODE)
    return im


def inspect_image(data: bytes) -> ImageInfo:
    """The facts of an image, decided by decoding it completely; raises InvalidImage."""
    with decoding():
        with open_lazily(data) as im:
            image_format = im.format
            im.verify()
        # verify() leaves the image unusable and misses truncated pixel data: decode it again.
        with open_lazily(data) as im:
            im.load()
            width, height = im.size
            has_alpha = im.has_transparency_data
    return ImageInfo(
        format="JPEG" if image_format in JPEG_FORMATS else image_format,
        width=width,
        height=height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        has_alpha=has_alpha,
    )


def prepare_for_upstream(data: bytes) -> tuple[bytes, str]:
    """(bytes, format name) of a reference as the upstream takes it: JPEG or PNG, upright,
    without EXIF, GPS, XMP, comments or text chunks, and keeping the ICC colour profile."""
    out = io.BytesIO()
    with decoding(), open_lazily(data) as im:
        icc_profile = im.info.get("icc_profile")
        upright = im.getexif().get(ORIENTATION, 1) == 1
        if im.format in JPEG_FORMATS and upright:
            # "keep" reuses the file's quantization tables and subsampling: no visible loss.
            # Metadata is only written when passed, except the comment, which Pillow copies.
            im.save(out, "JPEG", quality="keep", icc_profile=icc_profile, comment=b"")
            return out.getvalue(), "JPEG"
        if im.format in JPEG_FORMATS:
            ImageOps.exif_transpose(im).save(out, "JPEG", quality=95, icc_profile=icc_profile, comment=b"")
            return out.getvalue(), "JPEG"
        # Everything else becomes a PNG, which is lossless (WEBP's alpha included). Level 3 is
        # about 3× faster than the default 6 on a 6000 × 6000 photo, for ~10 % more bytes.
        upright_im = im if upright else ImageOps.exif_transpose(im)
        upright_im.save(out, "PNG", icc_profile=icc_profile, compress_level=3)
        return out.getvalue(), "PNG"


def clean_reference(data: bytes, info: ImageInfo) -> tuple[bytes, ImageInfo]:
    """(bytes, facts) of an uploaded reference as the studio stores it: upright, and without the
    camera's metadata (EXIF, GPS, XMP, IPTC, comments, text chunks), keeping the colour profile.

    An upright file loses its metadata blocks by splicing, every byte of image data kept as it
    was; a file that needs turning by its EXIF orientation is re-encoded upright (JPEG at
    quality 95, PNG and WEBP losslessly). `info` is inspect_image's for `data`.
    """
    with decoding(), open_lazily(data) as im:
        orientation = im.getexif().get(ORIENTATION, 1)
    try:
        if orientation in (1, None):
            clean = {"JPEG": _jpeg_stripped, "PNG": _png_stripped, "WEBP": _webp_stripped}[info.format](data)
        else:
            clean = _upright_copy(data, info.format)
    except (IndexError, KeyError, struct.error) as error:
        raise InvalidImage(NOT_AN_IMAGE) from error
    with decoding(), open_lazily(clean) as im:
        width, height = im.size
    return clean, ImageInfo(
        format=info.format, width=width, height=height, bytes=len(clean),
        sha256=hashlib.sha256(clean).hexdigest(), has_alpha=info.has_alpha,
    )


def _upright_copy(data, image_format):
    out = io.BytesIO()
    with decoding(), open_lazily(data) as im:
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
            body.append(riff_chunk(b"VP8X", bytes(flags)))
        elif fourcc not in (b"EXIF", b"XMP "):
            body.append(data[position:min(end, riff_end)])
        position = end
    payload = b"WEBP" + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def make_thumbnail(data_or_file, max_side: int = 512) -> bytes:
    """A WebP thumbnail (longest side at most max_side, never enlarged) of bytes or a binary file."""
    with decoding(), open_lazily(data_or_file) as im:
        small = shrink(im, max_side)
    return _webp(small)


def check_with_thumbnail(fp, size: int, sha256: str, max_side: int = 512, reserve=None) -> tuple[ImageInfo, bytes]:
    """(facts, WebP thumbnail) of a downloaded image file, decoding it once.

    The header gives format and size (and the pixel limit), a PNG's chunk checksums are verified
    without inflating, and the decode that makes the thumbnail is the proof that the pixel data
    decodes: a truncated or corrupt file raises InvalidImage, as `inspect_image` would. Decoding
    a 4K result twice was half the time of storing it (bench/store.py).

    `reserve(n)`, if given, is a context manager held around the decode for the `n` bytes of
    pixels it will hold (decoded_bytes): how several decodes at once are kept within memory.
    """
    with decoding():
        fp.seek(0)
        with open_lazily(fp) as im:
            image_format = im.format
            if image_format == "PNG":
                im.verify()
        fp.seek(0)
        with open_lazily(fp) as im:
            width, height = im.size
            with reserve(decoded_bytes(im, max_side)) if reserve else nullcontext():
                small = shrink(im, max_side)
    info = ImageInfo(
        format="JPEG" if image_format in JPEG_FORMATS else image_format,
        width=width, height=height, bytes=size, sha256=sha256,
    )
    return info, _webp(small)


def decoded_bytes(im, max_side: int = 512) -> int:
    """The bytes of pixels `shrink(im, max_side)` holds at once for a lazily opened image: the
    image as decoded (a JPEG at the reduced scale libjpeg decodes it to for thumbnail()), at the
    4 bytes a pixel Pillow keeps for RGB and RGBA, plus the converted copy of a palette image.
    A 4096 × 4096 PNG (the most pixels any model makes, 21:9 4K included) holds 64 MB, a
    4096 × 4096 JPEG 4 MB."""
    width, height = im.size
    if im.format in JPEG_FORMATS and len(im.tile) == 1:
        # thumbnail(reducing_gap=2.0) asks draft() for twice the box; draft picks 1/8 … 1/1.
        wanted = 2 * max_side
        fits = min(width // wanted, height // wanted)
        scale = next((s for s in (8, 4, 2) if fits >= s), 1)
        width, height = -(-width // scale), -(-height // scale)
    return width * height * (5 if im.mode in ("1", "P", "PA") else 4)


def _webp(im):
    out = io.BytesIO()
    im.save(out, "WEBP", quality=THUMBNAIL_QUALITY, method=THUMBNAIL_METHOD)
    return out.getvalue()


def fit_within(data: bytes, max_side: int, max_bytes: int) -> bytes:
    """The image itself if it already fits, else a JPEG copy that does: longest side at most
    max_side, at most max_bytes. Used when a (possibly 4K, 30 MB) result becomes a reference."""
    info = inspect_image(data)
    if max(info.width, info.height) <= max_side and info.bytes <= max_bytes:
        return data
    with decoding(), open_lazily(data) as im:
        im = shrink(im, max_side).convert("RGB")
    for quality in (92, 85, 75, 60):
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality)
        if out.tell() <= max_bytes:
            break
    return out.getvalue()


def shrink(im, max_side):
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


def read_capped(chunks: Iterable[bytes], max_bytes: int, into=None) -> tuple[tempfile.SpooledTemporaryFile, int, str]:
    """(file rewound to 0, size, SHA-256 hex) of a stream of byte chunks; raises TooLarge as soon
    as the stream passes max_bytes. The bytes go `into` a given binary file (closed on failure),
    else into a temporary file where small files stay in memory and larger ones spill to disk."""
    spool = into if into is not None else tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
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


def riff_chunk(fourcc, data):
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

"""Downloads that explain themselves: metadata (prompt, settings, author) written into a stored
original by splicing new blocks between byte ranges of the file, never re-encoding it."""

import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

from PIL import Image

from .decode import NOT_AN_IMAGE, PNG_SIGNATURE, TOO_LARGE_TO_DECODE, InvalidImage, riff_chunk

# Downloads that explain themselves: the original file with the prompt and settings written into
# its own metadata (SPEC §4). Nothing is decoded or re-encoded: new metadata blocks are spliced
# between byte ranges of the original, so every byte of image data stays as stored and a file of
# any size streams through a small, fixed buffer.

COPY_CHUNK_BYTES = 256 * 1024
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
        body = [riff_chunk(b"VP8X", bytes(flags))]
        kept = chunks[1:]
    elif first[2] in (b"VP8 ", b"VP8L"):
        width, height, alpha = _webp_canvas(fp, first)
        flags = (0x08 if exif else 0) | (0x04 if xmp else 0) | (0x10 if alpha else 0)
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = [riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)]
        kept = chunks
    else:
        raise InvalidImage(NOT_AN_IMAGE)
    for chunk in kept:
        if not ((chunk is old_exif and exif) or (chunk is old_xmp and xmp)):
            body.append(chunk[:2])
    # WebP's EXIF chunk holds the TIFF data itself, without JPEG's "Exif\0\0" prefix.
    body.append(
        (riff_chunk(b"EXIF", exif[6:]) if exif else b"") + (riff_chunk(b"XMP ", xmp) if xmp else b"")
    )
    body_size = Spliced(tuple(body)).size
    return [b"RIFF" + struct.pack("<I", 4 + body_size) + b"WEBP", *body]

"""An API request's body, read and parsed so that no body can produce a 500 (SPEC §9).

- Size: each endpoint takes at most what its largest valid request can be. A Content-Length over
  that is refused before a byte is read; a body without one (Transfer-Encoding: chunked) is read
  only where the server hands it over dechunked (`wsgi.input_terminated`, as granian and
  gunicorn do), and reading stops one byte past the cap. A server that cannot (Django's runserver) gets
  411: send Content-Length.
- JSON: nested at most MAX_DEPTH levels (json.loads recurses: a deeper document is refused
  without crashing, however deep), and no string or key holds a lone surrogate (`"\\ud800"`, or
  its bytes ED A0 80, which json accepts), which no database, URL or log can encode.
"""

import io
import json
import re
from dataclasses import dataclass

from django.http.multipartparser import MultiPartParser

from gallery import options

from .errors import ApiError

KB, MB = 1024, 1024 * 1024
MAX_DEPTH = 32  # the deepest valid body is 4 levels: {"model_params": {"tools": [{"type": …}]}}
READ_CHUNK = 64 * KB
SURROGATE = re.compile("[\ud800-\udfff]")
# How UTF-8 JSON text can hold a surrogate: a \u escape of D800-DFFF, or its bytes (ED A0-BF …).
MAYBE_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]|\xed[\xa0-\xbf]")


@dataclass(frozen=True)
class Limit:
    bytes: int
    holds: str  # what the largest valid body holds, for the 413's sentence


# A few short fields (upload/url, GET, DELETE): a file_url and a file name fit many times over.
SMALL = Limit(64 * KB, "a few short fields")
# One 10 MB image as base64 is 13,981,016 characters; room for a data: header, line breaks, "\/"
# escapes and a file name.
BASE64 = Limit(14 * MB, f"one image of at most {options.MAX_REFERENCE_BYTES // MB} MB, as base64")
STREAM = Limit(options.MAX_REFERENCE_BYTES + SMALL.bytes,
               f"one image of at most {options.MAX_REFERENCE_BYTES // MB} MB and its multipart fields")
# References as data: URIs (ten of 10 MB would be 140 MB): the studio's cap on any request,
# MAX_REQUEST_BYTES (101 MB, seven at full size; more go through the file service or https URLs).
GENERATIONS = Limit(options.MAX_REQUEST_BYTES, "the task's fields and its image_urls as data: URIs")


def _too_large(size, limit):
    return ApiError(413, f"The request body is {size} bytes; this endpoint takes at most {limit.bytes:,} "
                         f"({limit.holds}). Nothing was saved.")


def content_length(request):
    """The declared length of the body, or None when the request declares none."""
    value = (request.META.get("CONTENT_LENGTH") or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        raise ApiError(400, "The Content-Length header is not a number of bytes.")
    return int(value)


def refuse_oversized(request, limit):
    """413 before reading, when the declared length is over the endpoint's cap."""
    length = content_length(request)
    if length is not None and length > limit.bytes:
        raise _too_large(f"{length:,}", limit)


def _chunked(request):
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def read(request, limit):
    """The body, read once and within `limit`."""
    if hasattr(request, "_api_body"):
        return request._api_body
    length = content_length(request)
    if length is not None:
        if length > limit.bytes:
            raise _too_large(f"{length:,}", limit)
        # Not request.body: that refuses anything over Django's 2.5 MB form limit.
        data = request.read()
    elif request.META.get("wsgi.input_terminated"):
        data = _read_to_end(request.META["wsgi.input"], limit)
    elif _chunked(request):
        raise ApiError(411, "Send the body with a Content-Length header: this server cannot read a body sent in "
                            "chunks (Transfer-Encoding: chunked).")
    else:
        data = b""
    request._api_body = data
    return data


def _read_to_end(stream, limit):
    parts, size = [], 0
    while True:
        piece = stream.read(min(READ_CHUNK, limit.bytes + 1 - size))
        if not piece:
            return b"".join(parts)
        parts.append(piece)
        size += len(piece)
        if size > limit.bytes:
            raise _too_large(f"more than {limit.bytes:,}", limit)


def multipart(request, limit):
    """(POST, FILES) of a multipart body. With a Content-Length Django streams it (files over
    2.5 MB to disk); a body sent in chunks is read within `limit` first, then parsed alike."""
    if content_length(request) is not None or not (request.META.get("wsgi.input_terminated") or _chunked(request)):
        return request.POST, request.FILES
    data = read(request, limit)
    meta = {**request.META, "CONTENT_LENGTH": str(len(data))}
    return MultiPartParser(meta, io.BytesIO(data), request.upload_handlers, request.encoding).parse()


# JSON ------------------------------------------------------------------------------------------


def _too_deep():
    return ApiError(400, f"The JSON is nested more than {MAX_DEPTH} levels deep; no request to this API needs "
                         "more than 4.")


def parse_json(raw):
    """The document in `raw` (bytes), or ApiError saying what is wrong with it."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError as e:
        raise ApiError(400, f"The body is not valid JSON: it is not UTF-8 (byte 0x{e.object[e.start]:02X} at "
                            f"position {e.start:,}).") from None
    except json.JSONDecodeError as e:
        raise ApiError(400, f"The body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    except ValueError:  # e.g. a number of more than 4,300 digits
        raise ApiError(400, "The body is not valid JSON: it holds a number too long to read.") from None
    check_document(doc, raw)
    return doc


def field_path(parts):
    """("image_urls", 2) → "image_urls[2]"; ("model_params", "tools") → "model_params.tools"."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = part if len(part) <= 64 else part[:63] + "…"
            text += f".{shown}" if text else shown
    return text


def _lone_surrogate(text, where, param, key=False):
    found = SURROGATE.search(text)
    if found:
        subject = f"A key of {where}" if key else "The body" if where == "the body" else where
        raise ApiError(
            400, f"{subject} contains an invalid character (a lone surrogate, U+{ord(found[0]):04X}) at character "
            f"{found.start() + 1:,}. Text must be valid Unicode: a character beyond U+FFFF is sent as a pair of "
            "surrogates (\\ud83d\\ude00), never half of one.", param)


def _check_string(text, path, key=False):
    if not text.isascii():
        where = field_path(path)
        _lone_surrogate(text, where or "the body", where or None, key)


def _maybe_surrogate(raw):
    if json.detect_encoding(raw) != "utf-8":
        return True  # UTF-16 or -32 (which json.loads reads too): walk it
    return (b"\\u" in raw or b"\xed" in raw) and MAYBE_SURROGATE.search(raw) is not None


def _items(container):
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


def check_document(doc, raw=None):
    """No container deeper than MAX_DEPTH and no lone surrogate in any string or key, in document
    order; the error names the field. Walked without recursion, holding only the path (at most
    MAX_DEPTH containers); skipped when `raw`, the text it came from, cannot hold either."""
    if raw is not None and raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH and not _maybe_surrogate(raw):
        return
    if isinstance(doc, str):
        _check_string(doc, ())
    if not isinstance(doc, (dict, list)):
        return
    stack, path = [_items(doc)], []
    while stack:
        for key, value in stack[-1]:
            if isinstance(key, str):
                _check_string(key, path, key=True)
            if isinstance(value, str):
                _check_string(value, (*path, key))
            elif isinstance(value, (dict, list)):
                if len(stack) >= MAX_DEPTH:
                    raise _too_deep()
                if value:
                    path.append(key)
                    stack.append(_items(value))
                    break
        else:
            stack.pop()
            if path:
                path.pop()

"""Reference images as the API receives them: `data:` URIs and base64, this studio's own file
URLs, and the checks every upload gets (type by content, size, sides, aspect: SPEC §2)."""

import base64
import binascii
import re

from django.core.exceptions import ValidationError

from gallery import options
from gallery.api_objects import own_file_lookup
from gallery.forms.studio import check_reference, stored_reference
from gallery.images.decode import InvalidImage
from gallery.models import ApiFile

from .errors import ApiError

DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)$", re.DOTALL)
# Base64 of a 10 MB file, plus room for a data: header and line breaks.
MAX_BASE64_CHARS = options.MAX_REFERENCE_BYTES * 4 // 3 + 1024


def decode_base64(value, param, allow_plain=False):
    """The bytes of a `data:…;base64,` URI (or, with allow_plain, of bare base64)."""
    if len(value) > MAX_BASE64_CHARS + 100_000:
        raise ApiError(413, f"{param} is larger than {options.MAX_REFERENCE_BYTES // 2**20} MB, the most a reference "
                            "image may be.", param)
    match = DATA_URI.match(value)
    if match:
        payload = match[3]
    elif allow_plain:
        payload = value
    else:
        raise ApiError(400, f"{param} must be an https:// URL or a data:image/…;base64, URI.", param)
    try:
        data = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param} is not valid base64.", param) from None
    if not data:
        raise ApiError(400, f"{param} is empty.", param)
    return data


def checked(name, data, param):
    """A CheckedReference, or the rule it breaks: 413 for size, 415 for a type that is not an
    image we take, 400 for the rest."""
    try:
        return check_reference(name, data)
    except ValidationError as e:
        status = {"too_big": 413, "format": 415, "unreadable": 415}.get(e.code, 400)
        raise ApiError(status, f"{param}: {e.messages[0]}", param) from None


def own_file(team, url, param):
    """A reference from a file_url of this studio's file service, or None if `url` is not one.
    Another team's file is "not found", like anything else of another team."""
    lookup = own_file_lookup(url)
    if lookup is None:
        return None
    api_file = ApiFile.objects.filter(team=team, **lookup).first()
    if api_file is None:
        raise ApiError(400, f"{param} names a file that does not exist (it was deleted, or belongs to another team).",
                       param)
    try:
        ref = stored_reference(api_file)
    except (InvalidImage, OSError):
        raise ApiError(400, f"{param}: this file can no longer be read from the studio's storage. Upload it again.",
                       param) from None
    ref.name = api_file.original_name or api_file.file_id
    return ref

"""How a stored file reaches a browser: object storage signs a short-lived URL of the object,
local disk cannot (the view then sends the file itself)."""

from django.utils.http import content_disposition_header


def presigned_url(field_file, *, content_type, filename=None, attachment=False, cache_control="private"):
    """A URL of the stored object that works for the storage's `querystring_expire` seconds and
    answers with these headers (S3's response-* overrides), or None when the storage cannot sign.

    Whoever holds the URL can fetch the object until it expires: call this only after the
    access check."""
    storage = field_file.storage
    # Only django-storages' S3Storage signs URLs; with querystring_auth off its URLs would be
    # public, so those files are sent through the app like local ones.
    if not getattr(storage, "querystring_auth", False):
        return None
    parameters = {"ResponseContentType": content_type, "ResponseCacheControl": cache_control}
    if disposition := content_disposition_header(attachment, filename):
        parameters["ResponseContentDisposition"] = disposition
    return storage.url(field_file.name, parameters=parameters)


def url_lifetime(field_file):
    """Seconds a presigned URL of this file lives."""
    return field_file.storage.querystring_expire

"""Private media: every file is served only to members of the team that owns it (404 for anyone
else), as the image type it was stored as, with nosniff and cache headers fit for private content.

With object storage, originals, thumbnails and references are not sent through the app: after the
same check the views redirect to a short-lived presigned URL of the object, signed to come back
with the same type, disposition and cache headers. Downloads with metadata and ZIPs change or
assemble the bytes, so they are always streamed from here."""

from django.http import FileResponse, Http404, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from gallery import downloads, options, storage
from gallery.access import get_for_team, team_required
from gallery.forms.gallery import SelectionForm
from gallery.models import GalleryImage, ReferenceImage

HOUR = 3600
YEAR = 365 * 24 * HOUR
BLOCK_SIZE = 256 * 1024  # FileResponse's default 4 KB blocks cost a server round trip each
PRIVATE_HOUR = f"private, max-age={HOUR}"
# Thumbnail names are unique and never rewritten, so browsers may keep them for long.
PRIVATE_FOREVER = f"private, max-age={YEAR}, immutable"


def _protected(response):
    response["X-Content-Type-Options"] = "nosniff"
    # Opened on its own, a stored file is a document that may run and fetch nothing.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


def _serve(request, field, content_type, cache, filename=None, etag=None):
    """The stored file, or a redirect to a presigned URL of it; `cache` is the file's own
    Cache-Control. Call it only once the requester may see the file."""
    if etag and (not_modified := get_conditional_response(request, etag=etag)):
        not_modified["Cache-Control"] = cache
        return not_modified
    if url := storage.presigned_url(field, content_type=content_type, filename=filename, cache_control=cache):
        return _redirect(url, storage.url_lifetime(field))
    try:
        handle = field.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(handle, content_type=content_type, filename=filename)
    response.block_size = BLOCK_SIZE
    response["Cache-Control"] = cache
    if etag:
        response["ETag"] = etag
    return _protected(response)


def _redirect(url, lifetime):
    # A browser may reuse the redirect (and so its cached copy of the object at that URL) for
    # half the URL's life, so a redirect it takes from its cache always leads to a live URL.
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = f"private, max-age={lifetime // 2}"
    return response


@team_required
@require_GET
def original(request, image_id):
    """The original exactly as stored, byte for byte (shown inline)."""
    image = get_for_team(request, GalleryImage.objects.select_related("task"), pk=image_id)
    return _serve(
        request, image.file, image.content_type, PRIVATE_HOUR, downloads.file_name(image), f'"{image.sha256}"'
    )


@team_required
@require_GET
def thumbnail(request, image_id):
    image = get_for_team(request, GalleryImage, pk=image_id)
    return _serve(request, image.thumbnail, "image/webp", PRIVATE_FOREVER)


@team_required
@require_GET
def reference(request, reference_id):
    ref = get_for_team(request, ReferenceImage, pk=reference_id)
    content_type = options.content_type(ref.format)
    return _serve(request, ref.file, content_type, PRIVATE_HOUR, etag=f'"{ref.sha256}"')


@team_required
@require_GET
@cache_control(private=True, max_age=HOUR)
def download(request, image_id):
    """The original's pixels with the prompt and settings written into the file, as an attachment."""
    image = get_for_team(
        request, GalleryImage.objects.select_related("task", "task__created_by"), pk=image_id
    )
    try:
        chunks = downloads.open_download(image)
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing from storage.") from None
    response = StreamingHttpResponse(chunks, content_type=image.content_type)
    response["Content-Length"] = chunks.size
    response["Content-Disposition"] = content_disposition_header(True, downloads.file_name(image))
    return _protected(response)


@team_required
@require_POST
def download_zip(request):
    """A ZIP of the selected images and a manifest, streamed while it is built."""
    form = SelectionForm(request.POST)
    if not form.is_valid():
        return render(request, "error.html", form.problem(), status=400)
    selected = form.selected(
        GalleryImage.objects.for_team(request.team).select_related("task", "task__created_by")
    )
    if selected is None:
        raise Http404("Some of these images do not exist.")
    response = StreamingHttpResponse(downloads.zip_chunks(selected), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(
        True, downloads.zip_name(request.team, len(selected))
    )
    response["Cache-Control"] = "private, no-store"
    return _protected(response)

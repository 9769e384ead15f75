"""Private media: every file is served only to members of the team that owns it."""

from django.http import FileResponse, Http404
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from gallery.access import get_for_team, team_required
from gallery.models import GalleryImage, ReferenceImage

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def _serve(field, content_type, filename=None):
    try:
        handle = field.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing from storage.") from None
    response = FileResponse(handle, content_type=content_type, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@team_required
@require_GET
@cache_control(private=True, max_age=3600)
def original(request, image_id):
    image = get_for_team(request, GalleryImage, pk=image_id)
    ext = image.file.name.rsplit(".", 1)[-1]
    return _serve(image.file, image.content_type, filename=f"seedream-{image.task_id}-{image.index + 1}.{ext}")


@team_required
@require_GET
@cache_control(private=True, max_age=31536000, immutable=True)
def thumbnail(request, image_id):
    # Thumbnail names are unique and never rewritten, so browsers may keep them for long.
    image = get_for_team(request, GalleryImage, pk=image_id)
    return _serve(image.thumbnail, "image/webp")


@team_required
@require_GET
@cache_control(private=True, max_age=3600)
def reference(request, reference_id):
    ref = get_for_team(request, ReferenceImage, pk=reference_id)
    return _serve(ref.file, CONTENT_TYPES.get(ref.format, "application/octet-stream"))

"""The gallery: the team's images newest first, one image's page, favourites and deletion."""

import textwrap

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from gallery.access import get_for_team, team_required
from gallery.forms.gallery import GalleryFilters, SelectionForm
from gallery.models import GalleryImage

PAGE_SIZE = 48
COUNT_LIMIT = 10_000  # beyond this the page says "10,000+ images"
# A search counts its matches up to here ("1,000+ images match"): past a thousand a person
# narrows the search rather than reads the number, and counting further costs every search for
# a frequent word the time of ten thousand index lookups (docs/BENCHMARKS.md, search).
SEARCH_COUNT_LIMIT = 1_000


@team_required
@require_GET
def gallery(request):
    filters = GalleryFilters(request.GET, team=request.team)
    ctx = {"filters": filters, "images": [], "next_cursor": None, "count": None, "count_limit": COUNT_LIMIT}
    if filters.is_valid():
        found = filters.apply(GalleryImage.objects.for_team(request.team))
        cursor = filters.cleaned_data["cursor"]
        ctx["images"], ctx["next_cursor"] = found.select_related("task").page(PAGE_SIZE, cursor)
        ctx["query"] = filters.query()
        if not (request.htmx and cursor):
            limit = SEARCH_COUNT_LIMIT if filters.cleaned_data["q"] else COUNT_LIMIT
            ctx["count"], ctx["count_limit"] = found.count_up_to(limit + 1), limit
    # Scrolling asks htmx for the next page alone, the filter bar for the results alone.
    template = "gallery/gallery.html"
    next_page = request.GET.get("cursor") and filters.is_valid()
    if request.htmx and not request.htmx.history_restore_request:
        template += "#next-page" if next_page else "#results"
    response = render(request, template, ctx, status=200 if filters.is_valid() else 400)
    if request.htmx and not filters.is_valid():
        # A broken page link asked for more tiles: show the problem in place of the results.
        response = reswap(retarget(response, "#results"), "outerHTML")
    patch_vary_headers(response, ["HX-Request"])
    return response


@team_required
@require_GET
def image_detail(request, image_id):
    image = get_for_team(
        request, GalleryImage.objects.select_related("task", "task__created_by"), pk=image_id
    )
    # Previous and next follow the gallery view the image was opened from.
    filters = GalleryFilters(request.GET, team=request.team)
    scope = GalleryImage.objects.for_team(request.team)
    if filters.is_valid():
        scope = filters.apply(scope)
    newer, older = scope.neighbours(image)
    ctx = {
        "image": image,
        "task": image.task,
        "siblings": image.task.images.exclude(pk=image.pk).order_by("index"),
        "references": image.task.references.all(),
        "newer": newer,
        "older": older,
        "query": filters.query() if filters.is_valid() else "",
        "page_title": short_prompt(image.task.prompt),
    }
    return render(request, "gallery/image.html", ctx)


def short_prompt(prompt, width=60):
    """The prompt on one line, cut at a word to `width` characters ("A lighthouse at dusk, long…")."""
    line = " ".join(prompt.split())
    short = textwrap.shorten(line, width, placeholder="…")
    if short == "…":  # one word longer than the width
        short = line[: width - 1] + "…"
    return short or "Image"


@team_required
@require_POST
def favourite(request, image_id):
    image = get_for_team(request, GalleryImage, pk=image_id)
    image.set_favourite(request.POST.get("favourite") == "1")
    if request.htmx:
        ctx = {"image": image, "compact": request.POST.get("compact") == "1", "next": _next(request)}
        return render(request, "gallery/_favourite.html", ctx)
    next_url = _next(request)
    return redirect(next_url) if next_url else redirect("image_detail", image.pk)


@team_required
@require_POST
def delete(request):
    """Deletes once `confirmed`; without it (a browser without JavaScript) it asks first."""
    form = SelectionForm(request.POST)
    if not form.is_valid():
        return render(request, "error.html", form.problem(), status=400)
    team_images = GalleryImage.objects.for_team(request.team)
    selected = form.selected(team_images.select_related("task"))
    if selected is None:
        raise Http404("Some of these images do not exist.")
    others = [image for image in selected if not image.may_be_changed_by(request.membership)]
    if others:
        raise PermissionDenied(
            f"{len(others)} of the selected images {'was' if len(others) == 1 else 'were'} made by someone else. "
            "Members can delete only their own images; owners and admins can delete any."
        )
    if request.POST.get("confirmed") != "1":
        return render(request, "gallery/image_delete.html", {"images": selected, "next": _next(request)})
    with transaction.atomic():
        count = team_images.filter(pk__in=[image.pk for image in selected]).delete_with_files()
    messages.success(request, f"Deleted {count} image{'s' if count != 1 else ''}.")
    return redirect(_next(request) or "gallery")


def _next(request):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return None

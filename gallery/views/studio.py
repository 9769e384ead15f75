from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from gallery import pipeline
from gallery.access import get_for_team, team_required
from gallery.forms import SubmitForm
from gallery.models import GenerationTask
from gallery.views.accounts import form_data
from gallery.providers import default_provider_name, price_per_image


@team_required
@require_http_methods(["GET", "POST"])
def studio(request):
    form = SubmitForm(form_data(request), request.FILES if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        task = pipeline.submit(request.team, request.user, form.cleaned_data)
        messages.success(request, f"Generating {task.n} image{'s' if task.n > 1 else ''}…")
        return redirect("studio")
    tasks = (
        GenerationTask.objects.for_team(request.team)
        .select_related("created_by")
        .prefetch_related("images")
        .recent()
    )
    ctx = {"form": form, "tasks": tasks, "price": price_per_image(default_provider_name())}
    return render(request, "gallery/studio.html", ctx, status=400 if form.errors else 200)


@team_required
def task_detail(request, task_id):
    task = get_for_team(
        request,
        GenerationTask.objects.select_related("created_by").prefetch_related("images", "references"),
        pk=task_id,
    )
    return render(request, "gallery/task_detail.html", {"task": task})

import secrets

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event

from gallery import budgets, catalog, history, offers, options, pipeline
from gallery.access import get_for_team, team_required
from gallery.forms.studio import SubmitForm, remix_initial, stored_tiles
from gallery.models import FINAL_STATES, GalleryImage, GenerationTask
from gallery.views.accounts import form_data


def _only_mine(request):
    return request.session.get(history.ONLY_MINE_KEY, False)


def _render(request, form, status=200, partial=""):
    history_now = history.load(request.team, request.user, _only_mine(request))
    history_now.oob = partial == "form-and-history"
    pricing = model_pricing()
    model = catalog.get(form["model"].value()) or catalog.get(settings.DEFAULT_MODEL)
    ctx = {
        "form": form,
        "tiles": stored_tiles(form),
        "history": history_now,
        "model_cards": [{"model": m, "price": pricing[m.id][m.default_quality]} for m in catalog.MODELS.values()],
        "current_model": model,
        "price": pricing[model.id].get(form["quality"].value()) or pricing[model.id][model.default_quality] or 0,
        "ratios": options.RATIOS,
        "rules": {**options.studio_rules(), "pricing": pricing, "budget": budgets.headroom(request.team, request.user)},
    }
    template = f"gallery/studio.html#{partial}" if partial else "gallery/studio.html"
    response = render(request, template, ctx, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def model_pricing():
    """{model: {quality: dollars per image at the cheapest provider that serves it, or None}}."""
    return {
        model.id: {quality: offers.price(model.id, quality) for quality in model.qualities}
        for model in catalog.MODELS.values()
    }


def _fresh_form(request, initial=None):
    return SubmitForm(initial={"submit_token": secrets.token_urlsafe(16), **(initial or {})}, team=request.team)


@team_required
@require_http_methods(["GET", "POST"])
def studio(request):
    if request.method == "POST":
        return submit(request)
    form = _fresh_form(request, remix_initial(request.team, request.GET))
    # htmx asks for the form alone when a remix or "use as reference" loads into it.
    return _render(request, form, partial="form" if request.htmx else "")


def submit(request):
    form = SubmitForm(form_data(request), request.FILES, team=request.team)
    if not form.is_valid():
        return _render(request, form, status=400, partial="form-and-history" if request.htmx else "")
    try:
        tasks = pipeline.submit_all(request.team, request.user, form.cleaned_data)
    except pipeline.StorageUnavailable as e:
        form.add_error(None, str(e))
        return _render(request, form, status=503, partial="form-and-history" if request.htmx else "")
    except pipeline.ModelUnavailable as e:  # the studio's prices changed since the form was checked
        form.add_error(None, options.say("model_unavailable", model=str(e)))
        return _render(request, form, status=400, partial="form-and-history" if request.htmx else "")
    except budgets.BudgetExceeded as e:
        form.add_error(None, e.message)
        return _render(request, form, status=402, partial="form-and-history" if request.htmx else "")
    if not request.htmx:
        messages.success(request, _started(tasks))
        return redirect("studio")
    response = _render(request, _fresh_form(request, _kept(request, tasks)), partial="form-and-history")
    return trigger_client_event(response, "taskCreated", {"id": str(tasks[0].pk), "count": len(tasks)})


def _started(tasks):
    if len(tasks) > 1:
        return f"Comparing {len(tasks)} models…"
    n = tasks[0].n
    return f"Generating {n} image{'s' if n > 1 else ''}…"


def _kept(request, tasks):
    """What the fresh form keeps after Generate: everything just sent (prompt, settings, the
    references now stored with the task), as a remix of it. People iterate; Clear starts over."""
    query = QueryDict(mutable=True)
    query["remix"] = str(tasks[0].pk)
    if len(tasks) > 1:
        query["compare"] = "1"
    return remix_initial(request.team, query)


@team_required
@require_GET
def history_fragment(request):
    """The history for its poll and the "only mine" toggle: 204 when nothing changed, only the
    rows that changed when the list is the same, else the whole history."""
    if "mine" in request.GET:
        request.session[history.ONLY_MINE_KEY] = request.GET["mine"] == "1"
    only_mine = _only_mine(request)
    now = history.version(request.team, request.user, only_mine)
    token = request.GET.get("v", "")
    if "mine" not in request.GET and token == now.token:
        return HttpResponse(status=204)
    if not request.htmx:
        return redirect("studio")
    changed = None if "mine" in request.GET else now.changed_since(token)
    if changed is not None:
        rows = history.rows(request.team, request.user, only_mine, ids=changed)
        ctx = {"history": history.History(tasks=rows, version=now, only_mine=only_mine)}
        response = render(request, "gallery/studio.html#history-rows", ctx)
    else:
        ctx = {"history": history.History(history.rows(request.team, request.user, only_mine), now, only_mine)}
        response = reswap(retarget(render(request, "gallery/studio.html#history-update", ctx), "#history"), "outerHTML")
    patch_vary_headers(response, ["HX-Request"])
    return response


def _task_for_page(request, task_id):
    images = Prefetch("images", queryset=GalleryImage.objects.order_by("index"))
    tasks = GenerationTask.objects.select_related("created_by").prefetch_related(images, "references")
    return get_for_team(request, tasks, pk=task_id)


@team_required
def task_detail(request, task_id):
    task = _task_for_page(request, task_id)
    # The page's poll (while the task runs) sends the version it shows: unchanged → 204.
    if request.htmx and request.GET.get("v") == task.version:
        return HttpResponse(status=204)
    template = "gallery/task_detail.html#task-live" if request.htmx else "gallery/task_detail.html"
    response = render(request, template, {"task": task})
    patch_vary_headers(response, ["HX-Request"])
    return response


@team_required
def compare(request, group_id):
    """The tasks of one comparison side by side, in the order the models were picked."""
    tasks = list(
        GenerationTask.objects.for_team(request.team).filter(compare_group=group_id)
        .select_related("created_by").prefetch_related("images").order_by("-created_at", "-id")
    )
    if not tasks:
        raise Http404("No such comparison.")
    return render(request, "gallery/compare.html", {"tasks": tasks, "first": tasks[0]})


def _after_action(request, message, status=200, task=None):
    """htmx gets the refreshed history and the message as an event (a refusal as an error). A
    plain form post comes back to the page it came from (the task page sends next=task, else the
    studio) with the message; a refusal is that page again with the sentence and the 4xx status."""
    if request.htmx:
        ctx = {"history": history.load(request.team, request.user, _only_mine(request))}
        response = render(request, "gallery/studio.html#history-update", ctx, status=status)
        return trigger_client_event(response, "studioMessage", {"text": message, "error": status >= 400})
    back_to_task = task is not None and request.POST.get("next") == "task"
    if back_to_task and not GenerationTask.objects.filter(pk=task.pk).exists():
        back_to_task = False  # deleted
    if status < 400:
        messages.info(request, message)
        return redirect("task_detail", task.pk) if back_to_task else redirect("studio")
    messages.error(request, message)
    if back_to_task:
        return render(request, "gallery/task_detail.html", {"task": _task_for_page(request, task.pk)}, status=status)
    return _render(request, _fresh_form(request), status=status)


def _own_task(request, task_id, queryset=GenerationTask.objects):
    """A task of the current team that this person may act on (SPEC §1), else 404 or 403."""
    task = get_for_team(request, queryset, pk=task_id)
    if not task.may_be_changed_by(request.membership):
        raise PermissionDenied("Only the person who made this task, or a team owner or admin, can do this.")
    return task


@team_required
@require_POST
def retry(request, task_id):
    task = _own_task(request, task_id, GenerationTask.objects.filter(status="failed"))
    if not task.can_retry:
        return _after_action(request, f"{task.failure.sentence} {task.failure.next_step}", status=409, task=task)
    try:
        pipeline.retry(task, request.user)
    except pipeline.StorageUnavailable as e:
        return _after_action(request, str(e), status=503, task=task)
    except budgets.BudgetExceeded as e:
        return _after_action(request, e.message, status=402, task=task)
    return _after_action(request, "Trying again as a new task.", task=task)


@team_required
@require_POST
def cancel(request, task_id):
    task = _own_task(request, task_id)
    done = pipeline.cancel(task)
    message = "Cancelled. Images already made are kept." if done else "This task had already finished."
    return _after_action(request, message, task=task)


@team_required
@require_POST
def delete(request, task_id):
    task = _own_task(request, task_id, GenerationTask.objects.filter(status__in=FINAL_STATES))
    if pipeline.delete(task):
        return _after_action(request, "Task and its images deleted.")
    return _after_action(
        request, "This task is still being wrapped up by a worker: try deleting it again in a moment.", status=409,
        task=task,
    )

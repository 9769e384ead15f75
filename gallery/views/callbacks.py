"""Callbacks from upstreams: unsigned, so they only wake a task up; the studio then re-reads
the task with its own GET (SPEC §7). Nothing in the body is trusted."""

from django.http import Http404, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from gallery import pipeline
from gallery.pipeline import callback_token


@csrf_exempt
@require_POST
def evolink(request, task_id, token):
    if not constant_time_compare(token, callback_token(task_id)):
        raise Http404("Unknown callback.")
    pipeline.wake(task_id)
    return HttpResponse(status=204)

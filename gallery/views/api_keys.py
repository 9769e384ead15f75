"""The API page: the team's keys (owners and admins create, revoke and rotate; members see
them), the callbacks sent with every attempt, and examples with this studio's address."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from gallery import webhooks
from gallery.access import get_for_team, manager_required, team_required
from gallery.api_objects import base_url
from gallery.forms.accounts import clean_name
from gallery.models import ApiKey, CallbackDelivery

SHOWN_ONCE = "new_api_secret"
RECENT_CALLBACKS = 20


class KeyForm(forms.Form):
    name = forms.CharField(label="Key name", max_length=100, widget=forms.TextInput(attrs={"placeholder": "Nightly catalogue batch"}))

    def clean_name(self):
        return clean_name(self.cleaned_data.get("name"), "a name for the key")


@team_required
@require_GET
def page(request):
    return _render(request)


def _render(request, form=None, status=200):
    keys = ApiKey.objects.for_team(request.team).select_related("created_by")
    deliveries = (
        CallbackDelivery.objects.filter(team=request.team).select_related("api_key", "task")
        .prefetch_related("attempt_log")[:RECENT_CALLBACKS]
    )
    ctx = {
        "keys": keys,
        "deliveries": deliveries,
        "form": form or KeyForm(),
        "shown_once": request.session.pop(SHOWN_ONCE, None),
        "base": base_url(request),
        "link_days": settings.API_RESULT_URL_DAYS,
        "example_key": next((k.prefix + "…" for k in keys if k.is_active), "sk-studio-…"),
    }
    return render(request, "gallery/api.html", ctx, status=status)


@manager_required
@require_POST
def create(request):
    form = KeyForm(request.POST)
    if not form.is_valid():
        return _render(request, form=form, status=400)
    key, raw, secret = ApiKey.create(request.team, form.cleaned_data["name"], request.user)
    # Shown on the next page only; the key's hash is all the studio keeps.
    request.session[SHOWN_ONCE] = {"name": key.name, "key": raw, "secret": secret}
    messages.success(request, f"Key “{key.name}” created. Copy it now: it is shown only once.")
    return redirect("api")


@manager_required
@require_POST
def revoke(request, key_id):
    key = get_for_team(request, ApiKey, pk=key_id)
    key.revoke()
    messages.success(request, f"Key “{key.name}” revoked: calls with it are refused from now on.")
    return redirect("api")


@manager_required
@require_POST
def rotate(request, key_id):
    key = get_for_team(request, ApiKey.objects.active(), pk=key_id)
    secret = key.rotate_signing_secret()
    request.session[SHOWN_ONCE] = {"name": key.name, "secret": secret, "rotated": True}
    messages.success(request, f"New signing secret for “{key.name}”. The old one also signs callbacks for 24 hours.")
    return redirect("api")


@manager_required
@require_POST
def redeliver(request, delivery_id):
    delivery = get_for_team(request, CallbackDelivery, pk=delivery_id)
    webhooks.redeliver(delivery)
    messages.success(request, "The callback is being sent again.")
    return redirect("api")

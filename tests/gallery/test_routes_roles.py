"""Routes × roles, enumerated.

Every URL pattern of the project is walked from the URLconf (the admin's included patterns and
the include of gallery.urls too) and must be classified in ROUTES below: how to call it (method,
URL kwargs filled from a fixture world, form data, htmx or not) and what each of five callers
gets. A route nobody classified fails the suite with its name; so does a table entry for a route
that no longer exists, and a route that resolves under another name than the table says.

The five callers (SPEC §1): the owner (alice), an admin (dana) and a member (bob) of "Studio";
an outsider (charlie, signed in, owner of the other team "Rivals"); and someone signed out.
Nobody is staff, so every admin view sends everyone to the admin's sign-in.

Every case starts from the same pristine world, and no case can affect the next: the world is
built once per module with the real pipeline (so its files really are in storage) inside a
transaction that is rolled back at the end; each case runs in a savepoint of its own that is rolled
back after it (pytest-django's `db`), on copies of the world's model instances and, before any POST,
on its own copy of the world's files. Safe methods and refused requests must change nothing (a
snapshot of users, teams, memberships, invites, tasks, images and references); an allowed POST
must do what it says (`effect`). Ids in paths that are not ids, or ids of nothing, are 404s.
"""

import copy
import io
import re
import shutil
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import QueryDict
from django.test import Client, override_settings
from django.urls import URLResolver, get_resolver, resolve, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlencode, urlsafe_base64_encode

from gallery import pipeline
from gallery.api_objects import result_url
from gallery.models import (
    ApiKey,
    CallbackDelivery,
    Charge,
    Delivery,
    GalleryImage,
    GenerationTask,
    Invite,
    Membership,
    ReferenceImage,
    Role,
    SandboxRun,
    Status,
    Team,
    User,
)
from gallery.pipeline import callback_token
from tests.factories import make_team, make_user
from tests.factories import make_reference, make_task, run_until_final

ROLES = ("owner", "admin", "member", "outsider", "anonymous")
BACKEND = "gallery.auth.EmailOrUsernameBackend"
SECRET = "a lighthouse made of marmalade"  # Studio's prompt: no outsider or stranger may read it
SMALL = {"custom_size": (96, 96)}  # the sandbox draws this size: quick to make and to store


# The URLconf, walked ------------------------------------------------------------------------------


def _join(prefix, route):
    # As Django joins a resolver's route with its patterns' (ResolverMatch.route): the second
    # route loses its leading "^".
    return prefix + route.removeprefix("^") if prefix else route


def walk(patterns=None, prefix="", namespace=""):
    """(route, view name) of every URL pattern, recursing into includes; name is None if unnamed."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = _join(prefix, str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from walk(pattern.url_patterns, route, inner)
        else:
            name = pattern.name and (f"{namespace}:{pattern.name}" if namespace else pattern.name)
            yield route, name


# How to read the table -----------------------------------------------------------------------------

LOGIN = "sent to sign in"  # 302 to /login/?next=<this url>
ADMIN_LOGIN = "sent to the admin's sign in"  # 302 to /admin/login/?next=<this url>


def to(location):
    """302 to `location` (a path, or a function of the world giving one)."""
    return (302, location)


def expect(owner, admin, member, outsider, anonymous):
    return {"owner": owner, "admin": admin, "member": member, "outsider": outsider, "anonymous": anonymous}


TEAM_OBJECT = expect(200, 200, 200, 404, LOGIN)  # a Studio object any teammate may see
TEAM_PAGE = expect(200, 200, 200, 200, LOGIN)  # a page of the caller's current team
ANYONE = expect(200, 200, 200, 200, 200)
NOWHERE = expect(404, 404, 404, 404, 404)
STAFF_ONLY = expect(*[ADMIN_LOGIN] * 5)


@dataclass(frozen=True)
class Case:
    key: str  # the test id: the route's name, with ":variant" for further calls of one route
    route: str  # the full pattern as the URLconf walk (and ResolverMatch.route) spells it
    name: str | None  # the view name it must resolve to (None: an unnamed pattern)
    expect: dict
    method: str = "GET"
    kwargs: Callable = lambda w: {}
    data: Callable = lambda w: {}
    htmx: bool = False
    query: Callable = lambda w: {}  # the query string's parameters
    url: Callable | None = None  # for unnamed patterns, which cannot be reversed
    effect: Callable | None = None  # checks what an allowed POST did: effect(ctx)
    check: Callable | None = None  # checks a 200's body: check(ctx, body)


# Effects of allowed POSTs. ctx: w (world), role, user, team (the caller's current team), client,
# response, before and after (snapshots).


def unchanged(ctx):
    assert ctx.after == ctx.before


def _new_tasks(ctx):
    return GenerationTask.objects.exclude(pk__in=[pk for pk, _ in ctx.before["tasks"]])


def submitted(ctx):
    (task,) = _new_tasks(ctx)
    assert (task.team, task.created_by, task.prompt) == (ctx.team, ctx.user, "A quiet harbour at dawn")


def submitted_reusing_studio_images(ctx):
    submitted(ctx)
    (task,) = _new_tasks(ctx)
    assert task.team == ctx.w.team and task.references.count() == 2


def remix_loaded(ctx, body):
    if ctx.role == "outsider":  # Studio's ids in the query are ignored: nothing of Studio is shown
        assert f"/media/reference/{ctx.w.reference.pk}/".encode() not in body
        assert f"/media/image/{ctx.w.image.pk}/thumb/".encode() not in body
    else:
        assert SECRET.encode() in body
        assert f"/media/reference/{ctx.w.reference.pk}/".encode() in body
        assert f"/media/image/{ctx.w.image.pk}/thumb/".encode() in body


def retried(which):
    def effect(ctx):
        (task,) = _new_tasks(ctx)
        original = getattr(ctx.w, which)
        assert (task.retry_of_id, task.team, task.created_by) == (original.pk, ctx.w.team, ctx.user)
        assert GenerationTask.objects.get(pk=getattr(ctx.w, which).pk).status == Status.FAILED

    return effect


def cancelled(which):
    def effect(ctx):
        assert GenerationTask.objects.get(pk=getattr(ctx.w, which).pk).status == Status.CANCELLED
        assert len(ctx.after["tasks"]) == len(ctx.before["tasks"])

    return effect


def task_deleted(which):
    def effect(ctx):
        task = getattr(ctx.w, which)
        assert not GenerationTask.objects.filter(pk=task.pk).exists()
        assert not GalleryImage.objects.filter(task_id=task.pk).exists()
        assert len(ctx.after["tasks"]) == len(ctx.before["tasks"]) - 1

    return effect


def key_created(ctx):
    assert ApiKey.objects.filter(team=ctx.team, name="Routes", created_by=ctx.user).count() == 1


def key_revoked(ctx):
    assert ApiKey.objects.get(pk=ctx.w.api_key.pk).revoked_at is not None


def secret_rotated(ctx):
    assert ApiKey.objects.get(pk=ctx.w.api_key.pk).signing_nonce != ctx.w.api_key.signing_nonce


def redelivered(ctx):
    delivery = CallbackDelivery.objects.get(pk=ctx.w.delivery.pk)
    assert (delivery.state, delivery.attempts) == (Delivery.PENDING, 0)


def result_token(w):
    return result_url(w.image, "").rsplit("/", 1)[1]


def favourited(ctx):
    assert GalleryImage.objects.get(pk=ctx.w.image.pk).favourite
    assert ctx.after["images"] == [(pk, fav or pk == ctx.w.image.pk) for pk, fav in ctx.before["images"]]


def image_deleted(ctx):
    assert not GalleryImage.objects.filter(pk=ctx.w.image.pk).exists()
    assert GenerationTask.objects.filter(pk=ctx.w.done.pk).exists()  # the task stays


def invited(ctx):
    new = Invite.objects.exclude(pk__in=[row[0] for row in ctx.before["invites"]])
    assert [(i.team, i.email, i.role) for i in new] == [(ctx.team, "newbie@example.com", Role.MEMBER)]


def invited_as_owner(ctx):
    if ctx.role == "admin":  # admins give only the admin and member roles
        return unchanged(ctx)
    new = Invite.objects.exclude(pk__in=[row[0] for row in ctx.before["invites"]])
    assert [(i.team, i.email, i.role) for i in new] == [(ctx.team, "", Role.OWNER)]


def budget_set(ctx):
    # The owner's own current team gets the budget (the outsider owns another team).
    ctx.team.refresh_from_db()
    assert (ctx.team.monthly_budget, ctx.team.member_monthly_cap, ctx.team.time_zone) == (Decimal("25.00"), None, "Europe/Berlin")


def revoked(ctx):
    assert Invite.objects.get(pk=ctx.w.invite.pk).revoked_at is not None
    assert ctx.after["memberships"] == ctx.before["memberships"]


def bob_made_admin(ctx):
    assert Membership.objects.get(pk=ctx.w.m_bob.pk).role == Role.ADMIN
    assert len(ctx.after["memberships"]) == len(ctx.before["memberships"])


def bob_made_owner(ctx):
    if ctx.role == "admin":  # admins give only the admin and member roles
        return unchanged(ctx)
    assert Membership.objects.get(pk=ctx.w.m_bob.pk).role == Role.OWNER
    assert Membership.objects.get(pk=ctx.w.m_alice.pk).role == Role.OWNER


def bob_removed(ctx):
    assert not Membership.objects.filter(pk=ctx.w.m_bob.pk).exists()
    assert User.objects.filter(pk=ctx.w.bob.pk).exists()
    assert len(ctx.after["memberships"]) == len(ctx.before["memberships"]) - 1


def left_unless_last_owner(ctx):
    if ctx.role in ("admin", "member"):
        assert not Membership.objects.filter(team=ctx.w.team, user=ctx.user).exists()
        assert len(ctx.after["memberships"]) == len(ctx.before["memberships"]) - 1
    else:  # alice and charlie are their teams' last owners: refused with a message
        unchanged(ctx)


def rivals_deleted(ctx):
    assert not Team.objects.filter(pk=ctx.w.rivals.pk).exists()
    assert not Membership.objects.filter(user=ctx.w.charlie).exists()
    assert ctx.after["tasks"] == ctx.before["tasks"] and ctx.after["images"] == ctx.before["images"]


def team_created(ctx):
    team = Team.objects.get(name="Night Shift")
    assert list(team.memberships.values_list("user", "role")) == [(ctx.user.pk, Role.OWNER)]
    assert ctx.client.session["team_id"] == team.pk


def switched_to_studio(ctx):
    assert ctx.client.session["team_id"] == ctx.w.team.pk
    unchanged(ctx)


def joined_by_open_invite(ctx):
    if ctx.role == "outsider":  # an address-less invite is for whoever holds the link
        assert Membership.objects.get(team=ctx.w.team, user=ctx.user).role == Role.MEMBER
        assert Invite.objects.get(pk=ctx.w.open_invite.pk).accepted_by == ctx.user
    else:  # already in the team, or (signed out) an empty sign-up form shown again
        unchanged(ctx)


def signed_out(ctx):
    assert "_auth_user_id" not in ctx.client.session
    unchanged(ctx)


# Checks of a 200's body


def same_bytes(which, field):
    def check(ctx, body):
        with getattr(getattr(ctx.w, which), field).open("rb") as stored:
            assert body == stored.read()

    return check


def is_webp(ctx, body):
    assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"


def is_png_attachment(ctx, body):
    assert body.startswith(b"\x89PNG")
    assert ctx.response["Content-Disposition"].startswith("attachment")


def is_zip_of_the_image(ctx, body):
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "manifest.json" in names and len(names) == 2


# The table --------------------------------------------------------------------------------------

SUBMIT = {
    "prompt": "A quiet harbour at dawn",
    "size": "1:1",
    "quality": "1K",
    "custom_size": "",
    "n": "1",
    "priority": "standard",
    "ask_for_n": "on",
}
HOME = to("/")  # the studio
API_PAGE = to("/api/")
NO_KEY = expect(*[401] * 5)
MEMBERS = to("/team/")  # the team page
USAGE = to("/usage/")
TASK = "tasks/<uuid:task_id>/"
CALLBACK = "upstream/evolink/<uuid:task_id>/<str:token>/"
RESET = "password/reset/<uidb64>/<token>/"
ROLE = "team/members/<id:membership_id>/role/"
REMOVE = "team/members/<id:membership_id>/remove/"


def task(which):
    return lambda w: {"task_id": getattr(w, which).pk}


def image(w):
    return {"image_id": w.image.pk}


def membership(which):
    return lambda w: {"membership_id": getattr(w, which).pk}


def reset_token(user):
    # Made when the case is called: a token dies when its user signs in (last_login changes).
    return default_token_generator.make_token(User.objects.get(pk=user.pk))


GALLERY_ROUTES = [
    # The studio
    Case("studio", "", "studio", TEAM_PAGE),
    Case("studio:htmx", "", "studio", TEAM_PAGE, htmx=True),
    Case("studio:submit", "", "studio", expect(HOME, HOME, HOME, HOME, LOGIN), "POST",
         data=lambda w: SUBMIT, effect=submitted),
    # Remix and "use as reference" name Studio's task and image in the query: only Studio loads them.
    Case("studio:remix", "", "studio", TEAM_PAGE, htmx=True, check=remix_loaded,
         query=lambda w: {"remix": w.done.pk, "use_image": w.image.pk}),
    # Reusing stored images without uploading them: another team's ids are refused like unknown ones.
    Case("studio:submit_reusing", "", "studio", expect(HOME, HOME, HOME, 400, LOGIN), "POST",
         data=lambda w: {**SUBMIT, "keep_reference": w.reference.pk, "use_image": w.image.pk},
         effect=submitted_reusing_studio_images),
    Case("history", "history/", "history", TEAM_PAGE, htmx=True),
    Case("history:plain", "history/", "history", expect(HOME, HOME, HOME, HOME, LOGIN)),
    # For load balancers: no sign-in, the same answer for everyone, nothing about any team.
    Case("healthz", "healthz/", "healthz", expect(200, 200, 200, 200, 200)),
    # Unsigned upstream callbacks: the per-task token is the only key, and they only wake a task.
    Case("evolink_callback", CALLBACK, "evolink_callback", expect(204, 204, 204, 204, 204), "POST",
         kwargs=lambda w: {"task_id": w.running.pk, "token": callback_token(w.running.pk)}, effect=unchanged),
    Case("evolink_callback:forged", CALLBACK, "evolink_callback", NOWHERE, "POST",
         kwargs=lambda w: {"task_id": w.running.pk, "token": "0" * 32}),
    # Tasks: members act on their own, owners and admins on anyone's (SPEC §1)
    Case("task_detail", TASK, "task_detail", TEAM_OBJECT, kwargs=task("done")),
    Case("compare", "compare/<uuid:group_id>/", "compare", TEAM_OBJECT, kwargs=lambda w: {"group_id": w.done.compare_group}),
    Case("task_retry", f"{TASK}retry/", "task_retry", expect(HOME, HOME, HOME, 404, LOGIN),
         "POST", kwargs=task("bobs_failed"), effect=retried("bobs_failed")),
    Case("task_retry:teammates", f"{TASK}retry/", "task_retry", expect(HOME, HOME, 403, 404, LOGIN),
         "POST", kwargs=task("alices_failed"), effect=retried("alices_failed")),
    Case("task_retry:htmx", f"{TASK}retry/", "task_retry", expect(200, 200, 403, 404, LOGIN),
         "POST", kwargs=task("alices_failed"), htmx=True, effect=retried("alices_failed")),
    Case("task_cancel", f"{TASK}cancel/", "task_cancel", expect(HOME, HOME, 403, 404, LOGIN),
         "POST", kwargs=task("running"), effect=cancelled("running")),
    Case("task_cancel:own", f"{TASK}cancel/", "task_cancel", expect(HOME, HOME, HOME, 404, LOGIN),
         "POST", kwargs=task("bobs_running"), effect=cancelled("bobs_running")),
    Case("task_cancel:htmx", f"{TASK}cancel/", "task_cancel", expect(200, 200, 403, 404, LOGIN),
         "POST", kwargs=task("running"), htmx=True, effect=cancelled("running")),
    Case("task_delete", f"{TASK}delete/", "task_delete", expect(HOME, HOME, 403, 404, LOGIN),
         "POST", kwargs=task("done"), effect=task_deleted("done")),
    Case("task_delete:own", f"{TASK}delete/", "task_delete", expect(HOME, HOME, HOME, 404, LOGIN),
         "POST", kwargs=task("bobs_failed"), effect=task_deleted("bobs_failed")),
    Case("task_delete:htmx", f"{TASK}delete/", "task_delete", expect(200, 200, 403, 404, LOGIN),
         "POST", kwargs=task("done"), htmx=True, effect=task_deleted("done")),
    # The gallery: anyone in the team favourites and downloads; members delete only their own images
    Case("gallery", "gallery/", "gallery", TEAM_PAGE),
    Case("gallery:htmx", "gallery/", "gallery", TEAM_PAGE, htmx=True),
    Case("image_detail", "gallery/<id:image_id>/", "image_detail", TEAM_OBJECT, kwargs=image),
    Case("image_favourite", "gallery/<id:image_id>/favourite/", "image_favourite",
         expect(*[to(lambda w: f"/gallery/{w.image.pk}/")] * 3, 404, LOGIN), "POST", kwargs=image,
         data=lambda w: {"favourite": "1"}, effect=favourited),
    Case("image_favourite:htmx", "gallery/<id:image_id>/favourite/", "image_favourite",
         expect(200, 200, 200, 404, LOGIN), "POST", kwargs=image, data=lambda w: {"favourite": "1"},
         htmx=True, effect=favourited),
    Case("gallery_delete", "gallery/delete/", "gallery_delete",
         expect(to("/gallery/"), to("/gallery/"), 403, 404, LOGIN), "POST",
         data=lambda w: {"ids": [w.image.pk], "confirmed": "1"}, effect=image_deleted),
    Case("gallery_zip", "gallery/download/", "gallery_zip", TEAM_OBJECT, "POST",
         data=lambda w: {"ids": [w.image.pk]}, effect=unchanged, check=is_zip_of_the_image),
    # Pages of the current team
    Case("usage", "usage/", "usage", TEAM_PAGE),
    Case("usage:month", "usage/", "usage", TEAM_PAGE, query=lambda w: {"month": "2026-02"}),
    Case("usage:bad_month", "usage/", "usage", expect(400, 400, 400, 400, LOGIN), query=lambda w: {"month": "2026-13"}),
    Case("usage_csv", "usage/export.csv", "usage_csv", TEAM_PAGE),
    Case("usage_budget", "usage/budget/", "usage_budget", expect(USAGE, 403, 403, USAGE, LOGIN), "POST",
         data=lambda w: {"monthly_budget": "25", "member_monthly_cap": "", "time_zone": "Europe/Berlin"}, effect=budget_set),
    Case("usage_budget:bad", "usage/budget/", "usage_budget", expect(400, 403, 403, 400, LOGIN), "POST",
         data=lambda w: {"monthly_budget": "-1", "time_zone": "Mars/Olympus"}, effect=unchanged),
    Case("api", "api/", "api", TEAM_PAGE),
    # The API page: owners and admins manage the team's keys, members look; an outsider acts on Rivals.
    Case("api_key_create", "api/keys/", "api_key_create", expect(API_PAGE, API_PAGE, 403, API_PAGE, LOGIN), "POST",
         data=lambda w: {"name": "Routes"}, effect=key_created),
    Case("api_key_revoke", "api/keys/<id:key_id>/revoke/", "api_key_revoke", expect(API_PAGE, API_PAGE, 403, 404, LOGIN),
         "POST", kwargs=lambda w: {"key_id": w.api_key.pk}, effect=key_revoked),
    Case("api_key_rotate", "api/keys/<id:key_id>/rotate/", "api_key_rotate", expect(API_PAGE, API_PAGE, 403, 404, LOGIN),
         "POST", kwargs=lambda w: {"key_id": w.api_key.pk}, effect=secret_rotated),
    Case("api_redeliver", "api/callbacks/<id:delivery_id>/redeliver/", "api_redeliver",
         expect(API_PAGE, API_PAGE, 403, 404, LOGIN), "POST", kwargs=lambda w: {"delivery_id": w.delivery.pk},
         effect=redelivered),
    # The Team API answers bearer keys only: a session (or nothing) is 401, in the upstream's shape.
    Case("api_generations", "v1/images/generations", "api_generations", NO_KEY, "POST",
         data=lambda w: {"prompt": "x"}),
    Case("api_task", "v1/tasks/<str:task_id>", "api_task", NO_KEY, kwargs=task("done")),
    Case("api_credits", "v1/credits", "api_credits", NO_KEY),
    Case("api_upload_stream", "api/v1/files/upload/stream", "api_upload_stream", NO_KEY, "POST"),
    Case("api_upload_base64", "api/v1/files/upload/base64", "api_upload_base64", NO_KEY, "POST"),
    Case("api_upload_url", "api/v1/files/upload/url", "api_upload_url", NO_KEY, "POST"),
    Case("api_files_quota", "api/v1/files/quota", "api_files_quota", NO_KEY),
    Case("api_files_list", "api/v1/files/list", "api_files_list", NO_KEY),
    Case("api_file_delete", "api/v1/files/<str:file_id>", "api_file_delete", expect(*[405] * 5),
         kwargs=lambda w: {"file_id": "file_x"}),
    # Signed links: the signature is the permission (no session, no key), for anyone holding one.
    Case("api_result", "v1/results/<str:token>", "api_result", ANYONE, kwargs=lambda w: {"token": result_token(w)},
         check=same_bytes("image", "file")),
    Case("api_result:forged", "v1/results/<str:token>", "api_result", NOWHERE,
         kwargs=lambda w: {"token": result_token(w)[:-8] + "AAAA.png"}),
    Case("api_file_content:forged", "api/v1/files/content/<str:token>", "api_file_content", NOWHERE,
         kwargs=lambda w: {"token": result_token(w)}),  # a result's signature is not a file's
    Case("api_openapi", "v1/openapi.json", "api_openapi", ANYONE),
    Case("providers", "providers/", "providers", expect(200, 200, 403, 200, LOGIN)),
    # Private media
    Case("image_original", "media/image/<id:image_id>/", "image_original", TEAM_OBJECT, kwargs=image,
         check=same_bytes("image", "file")),
    Case("image_thumbnail", "media/image/<id:image_id>/thumb/", "image_thumbnail", TEAM_OBJECT, kwargs=image,
         check=is_webp),
    Case("image_download", "media/image/<id:image_id>/download/", "image_download", TEAM_OBJECT, kwargs=image,
         check=is_png_attachment),
    Case("reference_file", "media/reference/<id:reference_id>/", "reference_file", TEAM_OBJECT,
         kwargs=lambda w: {"reference_id": w.reference.pk}, check=same_bytes("reference", "file")),
    # Accounts
    Case("welcome", "welcome/", "welcome", expect(HOME, HOME, HOME, HOME, HOME)),  # the instance is set up
    Case("signup", "signup/", "signup", NOWHERE),  # closed unless ALLOW_SIGNUP
    Case("login", "login/", "login", expect(HOME, HOME, HOME, HOME, 200)),
    Case("logout", "logout/", "logout", expect(*[to("/login/")] * 5), "POST", effect=signed_out),
    Case("password_change", "password/change/", "password_change", TEAM_PAGE),
    Case("password_change_done", "password/change/done/", "password_change_done", TEAM_PAGE),
    Case("password_reset", "password/reset/", "password_reset", ANYONE),
    Case("password_reset_done", "password/reset/sent/", "password_reset_done", ANYONE),
    # A reset link works for whoever holds it (Django's design): on to the set-password form.
    Case("password_reset_confirm", RESET, "password_reset_confirm",
         expect(*[to(lambda w: f"/password/reset/{w.alice_uid}/set-password/")] * 5),
         kwargs=lambda w: {"uidb64": w.alice_uid, "token": reset_token(w.alice)}),
    Case("password_reset_confirm:forged", RESET, "password_reset_confirm", ANYONE,
         kwargs=lambda w: {"uidb64": w.alice_uid, "token": "abc-0123456789abcdef0123456789abcdef"}),
    Case("password_reset_complete", "password/reset/complete/", "password_reset_complete", ANYONE),
    # Teams: owners and admins manage, admins never owners; the outsider acts on Rivals only
    Case("team_members", "team/", "team_members", TEAM_PAGE),
    Case("team_invite", "team/invite/", "team_invite", expect(MEMBERS, MEMBERS, 403, MEMBERS, LOGIN), "POST",
         data=lambda w: {"role": "member", "email": "newbie@example.com"}, effect=invited),
    # An admin may not make an owner: the refusal is bad input (400), with the reason on the page.
    Case("team_invite:owner", "team/invite/", "team_invite", expect(MEMBERS, 400, 403, MEMBERS, LOGIN),
         "POST", data=lambda w: {"role": "owner", "email": ""}, effect=invited_as_owner),
    Case("team_invite_revoke", "team/invites/<id:invite_id>/revoke/", "team_invite_revoke",
         expect(MEMBERS, MEMBERS, 403, 404, LOGIN), "POST",
         kwargs=lambda w: {"invite_id": w.invite.pk}, effect=revoked),
    Case("team_change_role", ROLE, "team_change_role", expect(MEMBERS, MEMBERS, 403, 404, LOGIN), "POST",
         kwargs=membership("m_bob"), data=lambda w: {"role": "admin"}, effect=bob_made_admin),
    Case("team_change_role:to_owner", ROLE, "team_change_role", expect(MEMBERS, 400, 403, 404, LOGIN),
         "POST", kwargs=membership("m_bob"), data=lambda w: {"role": "owner"}, effect=bob_made_owner),
    # Demoting the owner: alice is the last owner (409), and an admin may not touch an owner (403).
    Case("team_change_role:owner", ROLE, "team_change_role", expect(409, 403, 403, 404, LOGIN),
         "POST", kwargs=membership("m_alice"), data=lambda w: {"role": "member"}, effect=unchanged),
    Case("team_remove", REMOVE, "team_remove", expect(MEMBERS, MEMBERS, 403, 404, LOGIN), "POST",
         kwargs=membership("m_bob"), effect=bob_removed),
    Case("team_remove:owner", REMOVE, "team_remove", expect(409, 403, 403, 404, LOGIN), "POST",
         kwargs=membership("m_alice"), effect=unchanged),
    # The last owner of a team may not leave it (alice of Studio, charlie of Rivals): 409.
    Case("team_leave", "team/leave/", "team_leave", expect(409, HOME, HOME, 409, LOGIN), "POST",
         effect=left_unless_last_owner),
    # Deleting a team: owners only, typing its name. Studio has tasks running (409: nothing goes);
    # "Studio" is not the name of charlie's team (400).
    Case("team_delete", "team/delete/", "team_delete", expect(409, 403, 403, 400, LOGIN), "POST",
         data=lambda w: {"name": "Studio"}, effect=unchanged),
    # Typing "Rivals": charlie deletes his own team and, in no team now, is asked to create one.
    Case("team_delete:rivals", "team/delete/", "team_delete", expect(400, 403, 403, to("/teams/new/"), LOGIN),
         "POST", data=lambda w: {"name": "Rivals"}, effect=rivals_deleted),
    Case("team_create", "teams/new/", "team_create", TEAM_PAGE),
    Case("team_create:post", "teams/new/", "team_create", expect(HOME, HOME, HOME, HOME, LOGIN), "POST",
         data=lambda w: {"name": "Night Shift"}, effect=team_created),
    Case("team_switch", "teams/switch/", "team_switch", expect(HOME, HOME, HOME, 404, LOGIN), "POST",
         data=lambda w: {"team": w.team.pk}, effect=switched_to_studio),
    # An invite link is a bearer token, but one made for an address is refused to anyone else (403).
    Case("invite_accept", "invite/<str:token>/", "invite_accept", expect(HOME, HOME, HOME, 403, 200),
         kwargs=lambda w: {"token": w.invite_token}),
    # Signed out, an empty POST is an account form with nothing in it: 400 with its errors.
    Case("invite_accept:open", "invite/<str:token>/", "invite_accept", expect(HOME, HOME, HOME, HOME, 400),
         "POST", kwargs=lambda w: {"token": w.open_invite_token}, effect=joined_by_open_invite),
    Case("invite_accept:unknown", "invite/<str:token>/", "invite_accept", NOWHERE,
         kwargs=lambda w: {"token": "no-such-invite-token"}),
]


def _object_id(which):
    return lambda w: {"object_id": which(w)}


HIJACK = {"name": "Hijacked", "username": "mallory", "role": "owner", "prompt": "hijacked"}
NEW_PASSWORD = {"password1": "Pwned-pwned-42", "password2": "Pwned-pwned-42"}

ADMIN_SITE_ROUTES = [
    Case("admin:index", "admin/", "admin:index", STAFF_ONLY),
    Case("admin:login", "admin/login/", "admin:login", ANYONE),  # the form, with a note for non-staff
    Case("admin:logout", "admin/logout/", "admin:logout", expect(*[to("/admin/")] * 5), "POST",
         effect=unchanged),
    Case("admin:password_change", "admin/password_change/", "admin:password_change", STAFF_ONLY, "POST",
         data=lambda w: {"old_password": "x", "new_password1": "Pwned-42", "new_password2": "Pwned-42"}),
    Case("admin:password_change_done", "admin/password_change/done/", "admin:password_change_done",
         STAFF_ONLY),
    Case("admin:autocomplete", "admin/autocomplete/", "admin:autocomplete", STAFF_ONLY),
    Case("admin:jsi18n", "admin/jsi18n/", "admin:jsi18n", STAFF_ONLY),
    Case("admin:view_on_site", "admin/r/<path:content_type_id>/<path:object_id>/", "admin:view_on_site",
         STAFF_ONLY, kwargs=lambda w: {
             "content_type_id": ContentType.objects.get_for_model(Team).pk, "object_id": w.team.pk}),
    Case("admin:auth_user_password_change", "admin/gallery/user/<id>/password/",
         "admin:auth_user_password_change", STAFF_ONLY, "POST", kwargs=lambda w: {"id": w.alice.pk},
         data=lambda w: NEW_PASSWORD),
    Case("admin:app_list", "admin/(?P<app_label>auth|gallery|django_tasks_database|axes)/$", "admin:app_list",
         STAFF_ONLY, kwargs=lambda w: {"app_label": "gallery"}),
    Case("admin:catch_all", "admin/(?P<url>.*)$", None, STAFF_ONLY, url=lambda w: "/admin/no-such-page/"),
]

# Each registered model's six admin routes; the object aimed at is one of the world where there is
# one (every admin view refuses a non-staff caller before it looks anything up).
ADMIN_MODELS = {
    "auth/group": lambda w: 1,
    "gallery/user": lambda w: w.alice.pk,
    "gallery/team": lambda w: w.team.pk,
    "gallery/membership": lambda w: w.m_alice.pk,
    "gallery/invite": lambda w: w.invite.pk,
    "gallery/generationtask": lambda w: w.done.pk,
    "gallery/galleryimage": lambda w: w.image.pk,
    "gallery/referenceimage": lambda w: w.reference.pk,
    "gallery/workerheartbeat": lambda w: "worker-1",
    "gallery/sandboxrun": lambda w: SandboxRun.objects.order_by("pk").first().pk,
    "gallery/charge": lambda w: Charge.objects.order_by("pk").first().pk,
    "django_tasks_database/dbtaskresult": lambda w: "00000000-0000-0000-0000-000000000001",
    "axes/accessattempt": lambda w: 1,
    "axes/accesslog": lambda w: 1,
    "axes/accessfailurelog": lambda w: 1,
}


def admin_model_routes(path, object_id):
    app, model = path.split("/")
    name = f"admin:{app}_{model}"
    one, kwargs = f"admin/{path}/<path:object_id>/", _object_id(object_id)
    return [
        Case(f"{name}_changelist", f"admin/{path}/", f"{name}_changelist", STAFF_ONLY),
        Case(f"{name}_add", f"admin/{path}/add/", f"{name}_add", STAFF_ONLY, "POST", data=lambda w: HIJACK),
        Case(f"{name}_history", f"{one}history/", f"{name}_history", STAFF_ONLY, kwargs=kwargs),
        Case(f"{name}_delete", f"{one}delete/", f"{name}_delete", STAFF_ONLY, "POST", kwargs=kwargs,
             data=lambda w: {"post": "yes"}),
        Case(f"{name}_change", f"{one}change/", f"{name}_change", STAFF_ONLY, "POST", kwargs=kwargs,
             data=lambda w: HIJACK),
        # The old-style object URL, an unnamed redirect to the change page
        Case(f"{name}_object", one, None, STAFF_ONLY, url=lambda w: f"/admin/{path}/{object_id(w)}/"),
    ]


ROUTES = (
    ADMIN_SITE_ROUTES
    + [case for path, object_id in ADMIN_MODELS.items() for case in admin_model_routes(path, object_id)]
    + GALLERY_ROUTES
)
CASES = {case.key: case for case in ROUTES}
CASES_BY_ROUTE = defaultdict(list)
for _case in ROUTES:
    CASES_BY_ROUTE[_case.route].append(_case)

# Cases whose answer contradicts the rules, by test id (e.g. "task_cancel-member", "image_detail-0"):
# each keeps the correct expectation and is marked xfail(strict=True, reason="BUG: ..."), so a fix
# shows as an unexpected pass. None found when this table was written.
BUGS = {}


# The world -----------------------------------------------------------------------------------------


# Built once per module (see the module's docstring): the pipeline runs that make it real would
# cost more than all the requests of a case.

WORLD_SETTINGS = {  # as tests/conftest.py's _fast_settings, for building outside a test
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    "SANDBOX_QUEUE_SECONDS": 0,
    "SANDBOX_RUN_SECONDS": 0,
    "TASK_FIRST_CHECK_SECONDS": 0,
    "TASK_CHECK_SECONDS": 0.2,
}


def _to_running(task):
    for _ in range(3):
        pipeline.advance(task.pk)
        task.refresh_from_db()
        if task.status == Status.RUNNING:
            return task
    raise AssertionError(f"the task did not start running: {task.status}")


def build_world():
    """Studio (owner alice, admin dana, member bob) with its work; Rivals (owner charlie)."""
    alice = make_user("alice", first_name="Alice")
    bob = make_user("bob", first_name="Bob")
    charlie = make_user("charlie", first_name="Charlie")
    dana = make_user("dana", first_name="Dana")
    team = make_team("Studio", alice, (bob, Role.MEMBER), (dana, Role.ADMIN))
    rivals = make_team("Rivals", charlie)
    done = run_until_final(make_task(team, alice, prompt=SECRET, references=[make_reference()], **SMALL))
    assert done.status == Status.COMPLETED and done.images.count() == done.references.count() == 1
    done.update_fields(compare_group=uuid.uuid4())  # one of a comparison, for the compare page
    fail = "[sandbox:fail=request_cancelled]"
    bobs_failed = run_until_final(make_task(team, bob, prompt=f"Bob's try {fail}", **SMALL))
    alices_failed = run_until_final(make_task(team, alice, prompt=f"Alice's try {fail}", **SMALL))
    assert bobs_failed.status == alices_failed.status == Status.FAILED
    running = _to_running(make_task(team, alice, prompt="Alice's slow one [sandbox:slow=60]", **SMALL))
    bobs_running = _to_running(make_task(team, bob, prompt="Bob's slow one [sandbox:slow=60]", **SMALL))
    invite, invite_token = Invite.create(team, alice, email="guest@example.com")
    open_invite, open_invite_token = Invite.create(team, alice)  # for whoever holds the link
    memberships = {m.user_id: m for m in team.memberships.all()}
    api_key = ApiKey.create(team, "Studio script", alice)[0]
    delivery = CallbackDelivery.objects.create(task=done, team=team, api_key=api_key, url="https://example.com/hook",
                                               webhook_id="msg_world", state=Delivery.DELIVERED, attempts=1)
    users = {"owner": alice, "admin": dana, "member": bob, "outsider": charlie, "anonymous": None}
    sessions = {}
    for role, user in users.items():  # signed in once; each case's client carries the cookie
        if user:
            client = Client()
            client.force_login(user, backend=BACKEND)
            sessions[role] = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    for user in (alice, bob, charlie, dana):
        user.refresh_from_db()  # with last_login as signing in left it
    return SimpleNamespace(
        alice=alice, dana=dana, bob=bob, charlie=charlie, team=team, rivals=rivals,
        users=users, sessions=sessions,
        teams={"owner": team, "admin": team, "member": team, "outsider": rivals, "anonymous": None},
        done=done, image=done.images.get(), reference=done.references.get(),
        bobs_failed=bobs_failed, alices_failed=alices_failed, running=running, bobs_running=bobs_running,
        invite=invite, invite_token=invite_token, api_key=api_key, delivery=delivery,
        open_invite=open_invite, open_invite_token=open_invite_token,
        m_alice=memberships[alice.pk], m_dana=memberships[dana.pk], m_bob=memberships[bob.pk],
        alice_uid=urlsafe_base64_encode(force_bytes(alice.pk)),
    )


@pytest.fixture(scope="module")
def world_template(django_db_setup, django_db_blocker, tmp_path_factory):
    """The world, built once per module in a transaction rolled back when the module is done."""
    media = tmp_path_factory.mktemp("routes-roles-media")
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with override_settings(MEDIA_ROOT=media, **WORLD_SETTINGS):
                world = build_world()
            world.media, world.pristine = media, snapshot()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield world
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _media_storage():
    """Replaces tests/conftest.py's folder per test for this module: a case reads the world's files
    where they were stored, and one that may change files gets its own copy (own_media)."""


@pytest.fixture
def world(world_template, db, settings):
    """The world, fresh for this case: its rows as built (this case runs in a savepoint rolled back
    after it), its model instances copied, its files the module's until own_media()."""
    settings.MEDIA_ROOT = world_template.media
    settings.ALLOW_SIGNUP = False
    return copy.deepcopy(world_template)


def own_media(world, settings, tmp_path_factory):
    """Before a request that may change files: this case's own copy of the world's files."""
    settings.MEDIA_ROOT = shutil.copytree(world.media, tmp_path_factory.mktemp("media") / "media")


def snapshot():
    """Everything an access mistake could change."""

    def rows(model, *fields):
        return list(model.objects.order_by("pk").values_list(*fields))

    return {
        "users": rows(User, "pk", "username", "password", "is_staff", "is_superuser", "is_active"),
        "teams": rows(Team, "pk", "name"),
        "memberships": rows(Membership, "pk", "team", "user", "role"),
        "invites": rows(Invite, "pk", "team", "email", "role", "revoked_at", "accepted_at"),
        "tasks": rows(GenerationTask, "pk", "status"),
        "images": rows(GalleryImage, "pk", "favourite"),
        "references": rows(ReferenceImage, "pk", "task"),
        "api_keys": rows(ApiKey, "pk", "team", "name", "revoked_at", "signing_nonce"),
        "callbacks": rows(CallbackDelivery, "pk", "state", "attempts"),
    }


_handler = []


def client_for(world, role):
    client = Client(raise_request_exception=False)  # a crash reads as the 500 a browser would get
    # One handler for the module: loading the middleware (WhiteNoise scans the static files) for
    # every new client would cost more than the whole request.
    if not _handler:
        _handler.append(client.handler)
    client.handler = _handler[0]
    if role in world.sessions:
        client.cookies[django_settings.SESSION_COOKIE_NAME] = world.sessions[role]
    return client


def url_of(case, world):
    path = case.url(world) if case.url else reverse(case.name, kwargs=case.kwargs(world))
    query = case.query(world)
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def sign_in_url(login, url):
    query = QueryDict(mutable=True)
    query["next"] = url
    return f"{login}?{query.urlencode(safe='/')}"  # as django.contrib.auth.views.redirect_to_login


def call(client, case, url, world):
    headers = {"HX-Request": "true"} if case.htmx else {}
    if case.method == "POST":
        return client.post(url, case.data(world), headers=headers)
    return client.get(url, headers=headers)


def body_of(response):
    if response.streaming:
        # A stream that breaks half-way fails here. (The test client closes the response once
        # it is read; closing it again would close the test's database connection.)
        return b"".join(response.streaming_content)
    return response.content


def refused(expected):
    return expected in (LOGIN, ADMIN_LOGIN) or (isinstance(expected, int) and expected >= 400)


# The tests --------------------------------------------------------------------------------------------


def _params():
    for route, name in walk():
        cases = CASES_BY_ROUTE.get(route)
        if not cases:
            unclassified = f"The route {route!r} (named {name!r})"
            yield pytest.param(unclassified, "-", id=f"UNCLASSIFIED:{name or route}")
            continue
        for case in cases:
            for role in ROLES:
                key = f"{case.key}-{role}"
                marks = [pytest.mark.xfail(strict=True, reason=BUGS[key])] if key in BUGS else []
                yield pytest.param(case.key, role, id=key, marks=marks)


@pytest.mark.parametrize("key,role", list(_params()))
def test_every_route_answers_each_role_as_the_rules_say(key, role, world, settings, tmp_path_factory):
    if key not in CASES:
        pytest.fail(f"{key} is not classified: add it to ROUTES (how to call it and what each role gets)")
    case, w = CASES[key], world
    if case.method != "GET":
        own_media(w, settings, tmp_path_factory)
    client = client_for(w, role)
    url = url_of(case, w)
    before = w.pristine  # every case starts from the world as built

    response = call(client, case, url, w)

    body = body_of(response)
    after = snapshot()
    expected = case.expect[role]
    status, location = expected, None
    if expected == LOGIN:
        status, location = 302, sign_in_url("/login/", url)
    elif expected == ADMIN_LOGIN:
        status, location = 302, sign_in_url("/admin/login/", url)
    elif isinstance(expected, tuple):
        status, location = expected
        location = location(w) if callable(location) else location
    answer = f"{case.method} {url} as {role}: {response.status_code}, not {status}"
    assert response.status_code == status, answer
    if location is not None:
        assert response["Location"] == location
    if role in ("outsider", "anonymous"):
        assert SECRET.encode() not in body
    if role == "outsider" and status == 404 and case.expect["owner"] != 404:
        assert b"There is nothing here, or it belongs to another team." in body  # as if it did not exist
    ctx = SimpleNamespace(
        w=w, role=role, user=w.users[role], team=w.teams[role], client=client, response=response,
        before=before, after=after,
    )
    if case.method == "GET" or refused(expected):
        unchanged(ctx)
    else:
        case.effect(ctx)
    if status == 200 and case.check:
        case.check(ctx, body)


def test_the_table_names_only_routes_that_exist():
    walked = dict(walk())
    stale = sorted(f"{case.key} ({case.route!r})" for case in ROUTES if case.route not in walked)
    assert not stale, f"ROUTES has entries for routes that no longer exist: {stale}"
    assert len(CASES) == len(ROUTES), "two entries share a key"
    for case in ROUTES:
        assert set(case.expect) == set(ROLES), case.key
        assert case.method in ("GET", "POST"), case.key
        allowed = [role for role, expected in case.expect.items() if not refused(expected)]
        assert case.method == "GET" or not allowed or case.effect, f"{case.key}: say what its POST does"
    unclassified = sorted(
        f"{name} {route!r}" for route, name in walked.items()
        if route not in CASES_BY_ROUTE
    )
    assert not unclassified, f"routes nobody classified: {unclassified}"


def test_every_route_resolves_with_the_name_the_table_expects(world):
    assert snapshot() == world.pristine  # (and the cases before this one left the world as built)
    walked = dict(walk())
    problems = []
    for case in ROUTES:
        if walked.get(case.route, "missing") != case.name:
            found = f"names it {walked[case.route]!r}" if case.route in walked else "has no such route"
            expected = f"the table expects {case.name!r} at {case.route!r}"
            problems.append(f"{case.key}: {expected}; the URLconf {found}")
            continue
        url = url_of(case, world)
        match = resolve(urlsplit(url).path)
        if (match.route, match.view_name if case.name else match.url_name) != (case.route, case.name):
            problems.append(f"{case.key}: {url} resolves to {match.view_name!r} at {match.route!r}")
    assert not problems, "\n".join(problems)


# Hostile ids: the <id:...> converter takes ASCII digits within 64 bits, and uuids are uuids; anything
# else, or an id of nothing, is a 404 (never a 500) and changes nothing.

HOSTILE = {
    "id": ["0", "00", "99999999999999999999999", "9223372036854775807", "9223372036854775808", "-1", "1e3",
           "%D9%A3", "%C2%B2", "%EF%BC%91", "1%00"],
    "uuid": ["00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "not-a-uuid",
             "00000000-0000-0000-0000-0000000000000", "%00"],
}
ID_SEGMENT = re.compile(r"<(id|uuid):(\w+)>")


def fill(route, kwargs, hostile):
    """The path of `route` with its kwargs, the id-like segment replaced by `hostile`."""

    def segment(match):
        converter, name = match.group(1), match.group(2)
        return hostile if converter in HOSTILE else str(kwargs[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", segment, route)


def _hostile_params():
    for route, name in walk():
        found = ID_SEGMENT.search(route)
        if found and route in CASES_BY_ROUTE:
            case = CASES_BY_ROUTE[route][0]
            for value in HOSTILE[found.group(1)]:
                key = f"{case.key}-{value}"
                marks = [pytest.mark.xfail(strict=True, reason=BUGS[key])] if key in BUGS else []
                yield pytest.param(case.key, value, id=key, marks=marks)


@pytest.mark.parametrize("key,value", list(_hostile_params()))
def test_hostile_ids_are_404_never_500(key, value, world, settings, tmp_path_factory):
    case = CASES[key]
    if case.method != "GET":
        own_media(world, settings, tmp_path_factory)
    client = client_for(world, "owner")
    url = fill(case.route, case.kwargs(world), value)
    before = world.pristine

    response = call(client, case, url, world)

    assert response.status_code == 404, f"{case.method} {url}: {response.status_code}"
    assert snapshot() == before

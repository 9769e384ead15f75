"""Tools for the bad-input table (tests/gallery/test_bad_input.py): the world a row runs in, a
snapshot of everything a request could change, hand-built request bodies, and the outcome of one
request judged against SPEC §9's promise ("Bad input gets a 4xx with a message a person
understands… changes nothing; no request produces a 500")."""

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

from django.conf import settings
from django_tasks_db.models import DBTaskResult

from gallery.models import GalleryImage, GenerationTask, Invite, Membership, ReferenceImage, Team, User
from gallery.providers.sandbox import SandboxProvider

HX = {"HTTP_HX_REQUEST": "true"}
UPSTREAM_METHODS = ("create", "deliver_reference", "get", "delete_reference")
# What a rejected studio form or error page shows: a field's error list, a form-wide error, or the
# studio's own error page (a bare Django page has none of these).
ERROR_IN_PAGE = re.compile(
    r'<ul class="errorlist"[^>]*>\s*<li>'
    r'|class="message message-error"'
    r'|<article class="narrow" role="alert"><h1>'
)


class KnownBug(Exception):
    """A row broke the promise in exactly the way its xfail reason says (and in no other way)."""


@dataclass(frozen=True)
class Case:
    """One row: a request a person (or a script) might send, and what they should see."""

    name: str
    url: Any  # str, or world -> str
    status: int  # what SPEC asks for
    message: str  # words from the code a person must see (in the answer, or the page it leads to)
    data: Any = None  # dict, or world -> dict (files as SimpleUploadedFile; build them fresh)
    method: str = "POST"
    user: str | None = "alice"  # alice (owner), bob (member), charlie (another team's owner), None
    htmx: bool = False
    extra: dict = field(default_factory=dict)  # headers / WSGI environ
    send: Callable | None = None  # (client, world) -> response, for bodies the client cannot build
    setup: Callable | None = None  # (world, settings) -> None, before the "before" snapshot
    bug: str = ""  # "BUG: …": the app breaks the promise today (xfail, strict)
    broken: tuple = ()  # which checks the bug fails: status, message, rows, files, upstream, jobs, mail, 500
    bug_on: str = ""  # the database vendor the bug shows on ("" = every database)

    def __str__(self):
        return self.name


@dataclass
class World:
    alice: User
    bob: User
    charlie: User
    team: Team
    other_team: Team
    task: GenerationTask  # alice's, finished, with one image
    image: GalleryImage
    bobs_image: GalleryImage
    running_task: GenerationTask  # alice's, queued, with one reference
    reference: ReferenceImage
    other_image: GalleryImage
    other_reference: ReferenceImage
    deleted_image_id: int
    alice_membership: Membership
    bob_membership: Membership
    dora_invite: Invite  # made for dora@example.com
    dora_link: str
    open_invite: Invite  # for whoever holds the link
    open_link: str


def snapshot(client=None):
    """Every row a request could add, remove or change, and the signed-in person's current team."""
    state = {
        "users": list(User.objects.order_by("pk").values_list(
            "pk", "email", "first_name", "last_name", "password", "is_active", "last_team_id")),
        "teams": list(Team.objects.order_by("pk").values_list("pk", "name")),
        "memberships": list(Membership.objects.order_by("pk").values_list("pk", "team_id", "user_id", "role")),
        "invites": list(Invite.objects.order_by("pk").values_list(
            "pk", "email", "role", "accepted_at", "revoked_at")),
        "tasks": list(GenerationTask.objects.order_by("pk").values_list(
            "pk", "status", "prompt", "next_check_at")),
        "references": list(ReferenceImage.objects.order_by("pk").values_list("pk", "task_id", "file")),
        "images": list(GalleryImage.objects.order_by("pk").values_list("pk", "favourite", "file")),
        "jobs": DBTaskResult.objects.count(),
    }
    if client is not None and settings.SESSION_COOKIE_NAME in client.cookies:
        state["session team"] = client.session.get("team_id")
    return state


def stored_files():
    root = Path(settings.MEDIA_ROOT)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def diff(before, after):
    keys = set(before) | set(after)
    return {key: (before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)}


class UpstreamCalls(list):
    """Calls to the sandbox provider's methods (the offline upstream), recorded and passed on."""

    def install(self, monkeypatch):
        for name in UPSTREAM_METHODS:
            original = getattr(SandboxProvider, name)

            def recorder(provider, *args, _name=name, _original=original, **kwargs):
                self.append(_name)
                return _original(provider, *args, **kwargs)

            monkeypatch.setattr(SandboxProvider, name, recorder)
        return self


def multipart(fields, boundary="BadInputBoundary"):
    """A multipart/form-data body from {name: bytes or (filename, bytes, content type)}, byte for byte
    as given (the test client would encode text as UTF-8 first, so it cannot send invalid UTF-8)."""
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, tuple):
            filename, data, content_type = value
            out.write(f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode())
            out.write(f"Content-Type: {content_type}\r\n\r\n".encode())
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
            data = value
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Unreadable(io.BytesIO):
    """A request body that must never be read (a size cap refuses it from its Content-Length)."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def page_text(response):
    if getattr(response, "streaming", False):
        return ""
    return unescape(response.content.decode("utf-8", errors="replace"))


@dataclass
class Outcome:
    status: int
    text: str  # what the person sees: the answer, or the page a redirect leads to
    problems: dict  # check name -> what went wrong

    def judge(self, case):
        """Passes when nothing is wrong; a row with a known bug must fail exactly its `broken`
        checks (KnownBug, which its strict xfail expects); anything else is a plain failure."""
        unexpected = {k: v for k, v in self.problems.items() if k not in case.broken}
        main = self.text[max(0, self.text.find("<main")):]
        assert not unexpected, f"{case.name}: {unexpected}\n--- page ---\n{main[:3000]}"
        if self.problems:
            raise KnownBug(f"{case.bug} :: {self.problems}")

"""A walk through the studio per role (owner, admin, member), the way a new person explores it: start
at the studio and follow every link the pages offer, on a phone. Each page reached must have an
`h1`, no script error, no failed request, no sideways scroll at 390 px, and nothing serious or
critical for axe. Pages join the walk by being linked from one another, not by being listed here:
a page linked from nowhere is never walked (and the pages every role must reach are checked)."""

import re
from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import expect

from gallery import catalog, pipeline
from gallery.models import ApiKey, Invite, Membership, Role
from tests.factories import PASSWORD, make_user
from tests.e2e.axe import violations
from tests.factories import make_finished_task, make_image, make_task, run_until_final
from tests.e2e.test_studio_reach import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "bypass_csp": True}
# Not pages of ours to walk: leaving, files, machine endpoints, and Django's own admin.
SKIP = re.compile(r"^/(logout/|media/|v1/|api/v1/|admin/|healthz/|upstream/)|\.csv$|/download/?$")
# One page per shape of address: /tasks/<uuid>/ and /gallery/<id>/ are walked once each.
SHAPE = re.compile(r"(?<=/)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]+)(?=/)")
MAX_PAGES = 40


def shape_of(path):
    return SHAPE.sub("*", path)


@pytest.fixture
def studio(team, alice, bob, settings):
    """A team in its first hour: finished, failed and compared tasks, an API key, an invite."""
    admin = make_user("dana", first_name="Dana")
    Membership.objects.create(team=team, user=admin, role=Role.ADMIN)
    task = make_finished_task(team, alice, prompt="A lighthouse at dusk")
    make_image(task, 0, width=160, height=90)
    make_image(task, 1, width=90, height=160)
    run_until_final(make_task(team, bob, prompt="x [sandbox:fail=service_error]"))
    pipeline.submit_all(team, alice, {
        "prompt": "A fox in the snow", "model": catalog.SD40, "compare": [catalog.SD40, catalog.SD45],
        "size": "1:1", "quality": "2K", "custom_size": None, "n": 1, "ask_for_n": True, "priority": "standard",
        "references": [],
    })
    ApiKey.create(team, "Nightly batch", alice)
    Invite.create(team, alice, email="erin@example.com")
    return team


def links_on(page, origin):
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    found = []
    for href in hrefs:
        url = urljoin(page.url, href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != origin or SKIP.search(parts.path):
            continue
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return found


def walk(page, live_server):
    """Every page reachable from the studio by its links: {path: [problems]}."""
    origin = live_server.url
    problems, failed = {}, []
    page.on("console", lambda m: failed.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: failed.append(f"script error: {e}"))
    # A request still under way when the walk moves on (the history's poll) is aborted: not a failure.
    page.on("requestfailed", lambda r: None if r.failure == "net::ERR_ABORTED" else failed.append(
        f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: failed.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    queue, seen_shapes = deque(["/"]), set()
    while queue and len(problems) < MAX_PAGES:
        path = queue.popleft()
        key = shape_of(path.split("?")[0])
        if key in seen_shapes:
            continue
        seen_shapes.add(key)
        failed.clear()
        response = page.goto(origin + path)
        page.wait_for_load_state("networkidle")
        found = list(failed)
        if response.status >= 400:
            found.append(f"the page answered {response.status}")
        if page.locator("h1").count() == 0:
            found.append("no h1")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            found.append(f"{width} px wide")
        found += [f"axe {rule} ({impact}): {help} {targets}" for rule, impact, help, targets in violations(page)]
        problems[path] = found
        queue.extend(links_on(page, origin))
    return problems


@pytest.mark.parametrize("username, role", [("alice", "owner"), ("dana", "admin"), ("bob", "member")])
def test_every_page_a_role_can_reach_by_clicking_is_whole_on_a_phone(
    username, role, studio, live_server, new_context
):
    context = new_context(**PHONE, color_scheme="dark" if role == "owner" else "light")
    page = context.new_page()
    sign_in(page, live_server, username)
    problems = walk(page, live_server)
    reached = {shape_of(path.split("?")[0]) for path in problems}
    # The pages every member uses must be among those reached by following links.
    for must in ("/", "/gallery/", "/gallery/*/", "/tasks/*/", "/compare/*/", "/team/", "/usage/", "/api/",
                 "/password/change/"):
        assert must in reached, f"{role}: {must} is linked from nowhere they can click ({sorted(reached)})"
    if role != "member":
        assert "/providers/" in reached
    assert {path: found for path, found in problems.items() if found} == {}

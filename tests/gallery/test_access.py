"""Private by default: strangers get 404, signed-out people go to sign-in, and bad input never 500s."""

import re

import pytest

from gallery.models import GalleryImage, GenerationTask, Invite, Membership, Role
from tests.factories import make_finished_task, make_image

TEAM_PAGES = ["/", "/gallery/", "/usage/", "/api/", "/team/"]
SECRET_PROMPT = "a lighthouse made of marmalade"


def make_task(team, user, prompt=SECRET_PROMPT):
    return make_finished_task(team, user, prompt=prompt)


@pytest.fixture
def studio_work(alice, bob, team):
    """Studio's private things: a task with an image, a pending invite, and the members."""
    team.name = "Moonbeam Collective"
    team.save()
    task = make_task(team, alice)
    invite, _ = Invite.create(team, alice, email="guest@example.com")
    return {
        "task": task,
        "image": make_image(task),
        "invite": invite,
        "alice": Membership.objects.get(user=alice, team=team),
        "bob": Membership.objects.get(user=bob, team=team),
    }


def snapshot():
    """Everything an access mistake could change."""
    return (
        sorted(Membership.objects.values_list("team_id", "user_id", "role")),
        sorted(Invite.objects.values_list("pk", "revoked_at", "accepted_at")),
        GenerationTask.objects.count(),
        GalleryImage.objects.count(),
    )


# Outsiders


@pytest.mark.parametrize(
    "url",
    [
        "/team/members/{alice}/role/",
        "/team/members/{bob}/role/",
        "/team/members/{alice}/remove/",
        "/team/members/{bob}/remove/",
        "/team/invites/{invite}/revoke/",
    ],
)
def test_an_outsider_gets_404_for_another_teams_members_and_invites(client_charlie, studio_work, url):
    before = snapshot()
    ids = {key: studio_work[key].pk for key in ("alice", "bob", "invite")}

    response = client_charlie.post(url.format(**ids), {"role": "owner"})

    assert response.status_code == 404
    assert "There is nothing here, or it belongs to another team." in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize(
    "url",
    ["/tasks/{task}/", "/media/image/{image}/", "/media/image/{image}/thumb/"],
)
def test_an_outsider_gets_404_for_another_teams_tasks_and_files(client_charlie, studio_work, url):
    response = client_charlie.get(url.format(task=studio_work["task"].pk, image=studio_work["image"].pk))

    assert response.status_code == 404
    assert SECRET_PROMPT not in response.content.decode()


@pytest.mark.parametrize(
    "url",
    ["/tasks/{task}/", "/media/image/{image}/", "/media/image/{image}/thumb/"],
)
def test_a_member_reaches_their_teams_tasks_and_files(client_bob, studio_work, url):
    response = client_bob.get(url.format(task=studio_work["task"].pk, image=studio_work["image"].pk))

    assert response.status_code == 200


def test_a_manager_gets_404_for_a_membership_of_another_team_they_also_belong_to(
    client_alice, alice, charlie, other_team, studio_work
):
    # Alice manages Moonbeam but is only a member of Rivals; Rivals' memberships are not hers to touch
    # while Moonbeam is her current team, even though she can see them by switching.
    Membership.objects.create(team=other_team, user=alice, role=Role.MEMBER)
    session = client_alice.session
    session["team_id"] = studio_work["alice"].team_id
    session.save()
    charlie_membership = Membership.objects.get(user=charlie, team=other_team)
    before = snapshot()

    demote = client_alice.post(f"/team/members/{charlie_membership.pk}/role/", {"role": "member"})
    remove = client_alice.post(f"/team/members/{charlie_membership.pk}/remove/")

    assert demote.status_code == remove.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("url", TEAM_PAGES)
def test_every_team_page_shows_only_the_current_teams_data(client_charlie, studio_work, url):
    make_task(studio_work["task"].team, studio_work["task"].created_by, prompt="another moonbeam secret")

    response = client_charlie.get(url)

    body = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<summary><span class="sr-only">Team: </span>\s*Rivals\s*</summary>', body)
    for secret in ("Moonbeam", SECRET_PROMPT, "alice@example.com", "bob@example.com", "guest@example.com"):
        assert secret not in body
    assert f"/media/image/{studio_work['image'].pk}/" not in body
    assert str(studio_work["task"].pk) not in body


def test_the_studio_lists_only_the_current_teams_tasks(client_alice, alice, charlie, other_team, studio_work):
    make_task(other_team, charlie, prompt="rival plans for world domination")

    body = client_alice.get("/").content.decode()

    assert SECRET_PROMPT in body
    assert "rival plans for world domination" not in body


def test_switching_teams_switches_the_data_shown(client_alice, alice, charlie, other_team, studio_work):
    Membership.objects.create(team=other_team, user=alice, role=Role.MEMBER)
    make_task(other_team, charlie, prompt="rival plans for world domination")

    client_alice.post("/teams/switch/", {"team": other_team.pk})
    body = client_alice.get("/").content.decode()

    assert "rival plans for world domination" in body
    assert SECRET_PROMPT not in body


# Signed-out people


@pytest.mark.parametrize(
    "url",
    TEAM_PAGES
    + [
        "/teams/new/",
        "/password/change/",
        "/tasks/00000000-0000-0000-0000-000000000000/",
        "/media/image/1/",
        "/media/image/1/thumb/",
        "/media/reference/1/",
    ],
)
def test_signed_out_people_are_sent_to_sign_in(client, alice, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


@pytest.mark.parametrize(
    "url",
    [
        "/team/invite/",
        "/team/invites/1/revoke/",
        "/team/members/1/role/",
        "/team/members/1/remove/",
        "/team/leave/",
        "/teams/switch/",
    ],
)
def test_signed_out_people_cannot_post_team_actions(client, alice, team, url):
    before = snapshot()

    response = client.post(url, {"role": "owner", "team": team.pk})

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert snapshot() == before


# People without a team


def test_someone_removed_from_their_only_team_is_asked_to_create_one(client, alice, bob, team):
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    Membership.objects.get(user=bob, team=team).remove()

    for url in TEAM_PAGES:
        response = client.get(url, follow=True)

        assert response.redirect_chain == [("/teams/new/", 302)]
        body = response.content.decode()
        assert "Create a team" in body
        assert "You are not in a team yet. Create one, or ask for an invite link." in body
        assert re.search(r'<summary><span class="sr-only">Team: </span>\s*No team\s*</summary>', body)
        assert 'action="/teams/switch/"' not in body  # no team left to switch to
        assert "<h1>Studio</h1>" not in body


def test_someone_without_a_team_gets_the_prompt_for_team_actions_too(client, bob, team):
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    Membership.objects.filter(user=bob).delete()

    response = client.post("/team/invite/", {"role": "member"})

    assert response.status_code == 302
    assert response["Location"] == "/teams/new/"
    assert not Invite.objects.exists()


def test_someone_without_a_team_can_create_one_and_carry_on(client, bob, team):
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    Membership.objects.filter(user=bob).delete()

    client.post("/teams/new/", {"name": "Fresh Start"})
    response = client.get("/team/")

    assert response.status_code == 200
    assert Membership.objects.get(user=bob).role == Role.OWNER
    assert "<h1>Fresh Start</h1>" in response.content.decode()


# Bad input never 500s


@pytest.mark.parametrize(
    "url",
    [
        "/team/invite/",
        "/team/invites/1/revoke/",
        "/team/members/1/role/",
        "/team/members/1/remove/",
        "/team/leave/",
        "/teams/switch/",
        "/logout/",
    ],
)
def test_post_only_urls_answer_405_to_get(client_alice, url):
    before = snapshot()

    response = client_alice.get(url)

    assert response.status_code == 405
    assert snapshot() == before


@pytest.mark.parametrize("url", ["/welcome/", "/teams/new/", "/invite/sometoken/", "/"])
def test_other_methods_are_refused_on_form_pages(client_alice, url):
    before = snapshot()

    response = client_alice.put(url)

    assert response.status_code == 405
    assert snapshot() == before


@pytest.mark.parametrize(
    "token", ["%00", "x" * 2000, "..%2F..%2Fetc%2Fpasswd", "%F0%9F%92%A3", "'; DROP TABLE gallery_invite;--"]
)
def test_a_garbage_invite_token_is_a_404(client, alice, token):
    response = client.get(f"/invite/{token}/")

    assert response.status_code == 404
    assert Membership.objects.count() == 0


def test_team_actions_with_missing_fields_explain_and_change_nothing(client_alice, studio_work):
    before = snapshot()

    invite = client_alice.post("/team/invite/", {})
    role = client_alice.post(f"/team/members/{studio_work['bob'].pk}/role/", {})
    team = client_alice.post("/teams/new/", {})
    switch = client_alice.post("/teams/switch/", {})

    for response in (invite, role, team):
        assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert switch.status_code == 404
    assert snapshot() == before


def test_unknown_ids_in_team_urls_are_404(client_alice, team):
    before = snapshot()

    for url in ("/team/members/999999/role/", "/team/members/999999/remove/", "/team/invites/999999/revoke/"):
        assert client_alice.post(url, {"role": "member"}).status_code == 404
    assert client_alice.get("/tasks/not-a-uuid/").status_code == 404
    assert snapshot() == before


def test_a_withdrawn_invite_cannot_be_withdrawn_again(client_alice, alice, team):
    invite, _ = Invite.create(team, alice)
    client_alice.post(f"/team/invites/{invite.pk}/revoke/")
    invite.refresh_from_db()
    first_revoked_at = invite.revoked_at

    response = client_alice.post(f"/team/invites/{invite.pk}/revoke/")

    assert response.status_code == 404
    invite.refresh_from_db()
    assert invite.revoked_at == first_revoked_at


def test_sign_up_is_closed_unless_the_instance_enables_it(client, alice, settings):
    settings.ALLOW_SIGNUP = False

    new_account = {"name": "Mallory", "email": "m@example.com", "password1": "x" * 20, "password2": "x" * 20}

    response = client.post("/signup/", new_account)

    assert response.status_code == 404
    assert not Membership.objects.filter(user__email="m@example.com").exists()
    assert client.session.get("_auth_user_id") is None


def test_open_sign_up_is_linked_from_the_sign_in_page_only_when_enabled(client, alice, settings):
    settings.ALLOW_SIGNUP = False
    assert 'href="/signup/"' not in client.get("/login/").content.decode()
    settings.ALLOW_SIGNUP = True
    assert 'href="/signup/"' in client.get("/login/").content.decode()
    assert client.get("/signup/").status_code == 200

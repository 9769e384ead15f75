"""Teams: creating and switching, invite links, roles and the last-owner rule (SPEC §1)."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from gallery.models import Invite, Membership, Role, Team, User
from tests.factories import PASSWORD, make_user

NEWCOMER = {"name": "Erin Ito", "email": "erin@example.com", "password1": PASSWORD, "password2": PASSWORD}


def current_team_in_header(response):
    match = re.search(r'<summary><span class="sr-only">Team: </span>([^<]*)</summary>', response.content.decode())
    return match.group(1).strip() if match else None


def role_of(user, team):
    membership = Membership.objects.filter(user=user, team=team).first()
    return membership.role if membership else None


def page(response):
    """The page's text as a person reads it."""
    return unescape(response.content.decode())


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def invite_link(team, created_by, role=Role.MEMBER, email=""):
    """A fresh invite and the path of its link."""
    invite, token = Invite.create(team, created_by, role=role, email=email)
    return invite, f"/invite/{token}/"


def login(client, user):
    client.force_login(user, backend="gallery.auth.EmailOrUsernameBackend")
    return client


# Creating teams and switching between them


def test_anyone_signed_in_can_create_a_team_and_becomes_its_owner(client_bob, bob, team):
    response = client_bob.post("/teams/new/", {"name": "  Night Shift  "})

    assert response.status_code == 302
    assert response["Location"] == "/"
    night_shift = Team.objects.get(name="Night Shift")
    assert role_of(bob, night_shift) == Role.OWNER
    assert role_of(bob, team) == Role.MEMBER  # still in the old team
    assert current_team_in_header(client_bob.get("/team/")) == "Night Shift"


def test_creating_a_team_with_a_blank_name_creates_nothing(client_bob, bob):
    response = client_bob.post("/teams/new/", {"name": "   "})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert Team.objects.count() == 1


def test_the_header_shows_the_current_team_and_lists_all_teams_of_the_person(client_alice, alice, other_team):
    Membership.objects.create(team=other_team, user=alice, role=Role.MEMBER)

    response = client_alice.get("/team/")

    body = response.content.decode()
    assert current_team_in_header(response) == response.context["team"].name
    assert f"<h1>{response.context['team'].name}</h1>" in body
    assert body.count('action="/teams/switch/"') == 2
    assert f'name="team" value="{other_team.pk}"' in body


def test_switching_teams_changes_the_current_team(client_alice, alice, team, other_team):
    Membership.objects.create(team=other_team, user=alice, role=Role.MEMBER)

    response = client_alice.post("/teams/switch/", {"team": other_team.pk, "next": "/gallery/"})

    assert response.status_code == 302
    assert response["Location"] == "/gallery/"
    assert client_alice.session["team_id"] == other_team.pk
    page = client_alice.get("/team/")
    assert current_team_in_header(page) == "Rivals"
    assert "<h1>Rivals</h1>" in page.content.decode()


def test_switching_to_a_team_you_are_not_in_is_a_404_and_changes_nothing(client_alice, team, other_team):
    response = client_alice.post("/teams/switch/", {"team": other_team.pk})

    assert response.status_code == 404
    assert "team_id" not in client_alice.session
    assert current_team_in_header(client_alice.get("/team/")) == "Studio"


@pytest.mark.parametrize("forged", ["", "abc", "-1", "1.5", "99999999999999999999", "1 OR 1=1"])
def test_switching_with_a_garbage_team_id_is_a_404(client_alice, team, forged):
    response = client_alice.post("/teams/switch/", {"team": forged})

    assert response.status_code == 404
    assert "team_id" not in client_alice.session


def test_switching_never_redirects_off_the_site(client_alice, alice, other_team):
    Membership.objects.create(team=other_team, user=alice, role=Role.MEMBER)

    response = client_alice.post("/teams/switch/", {"team": other_team.pk, "next": "https://evil.example/"})

    assert response["Location"] == "/"


def test_a_stale_team_in_the_session_falls_back_to_a_team_of_the_person(client_alice, team, other_team):
    session = client_alice.session
    session["team_id"] = other_team.pk  # e.g. a team they were removed from
    session.save()

    response = client_alice.get("/team/")

    assert current_team_in_header(response) == "Studio"
    assert "Rivals" not in response.content.decode()


# Invite links


def test_an_owner_creates_an_invite_link_shown_only_once(client_alice, alice, team):
    response = client_alice.post("/team/invite/", {"email": "", "role": "admin"})

    assert response.status_code == 302
    assert response["Location"] == "/team/"
    invite = Invite.objects.get()
    assert (invite.team, invite.role, invite.created_by) == (team, Role.ADMIN, alice)
    assert abs(invite.expires_at - invite.created_at - timedelta(days=7)) < timedelta(seconds=1)
    page = client_alice.get("/team/").content.decode()
    token = re.search(r"http://testserver/invite/([^/]+)/", page).group(1)
    assert Invite.objects.by_token(token).get() == invite
    assert token not in invite.token_hash  # only a hash is stored
    assert "shown only once" in page
    assert token not in client_alice.get("/team/").content.decode()


def test_an_invite_with_an_address_is_mailed(client_alice, team, mailoutbox):
    client_alice.post("/team/invite/", {"email": "erin@example.com", "role": "member"})

    assert Invite.objects.get().email == "erin@example.com"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["erin@example.com"]
    assert "Studio" in mailoutbox[0].subject
    token = re.search(r"http://testserver/invite/([^/\s]+)/", mailoutbox[0].body).group(1)
    assert Invite.objects.by_token(token).exists()


def test_an_invite_without_an_address_mails_nothing(client_alice, team, mailoutbox):
    client_alice.post("/team/invite/", {"email": "", "role": "member"})

    assert Invite.objects.count() == 1
    assert mailoutbox == []


def test_an_invite_with_a_malformed_address_explains_and_creates_nothing(client_alice, team, mailoutbox):
    response = client_alice.post("/team/invite/", {"email": "erin at example", "role": "member"}, follow=True)

    assert response.status_code == 400 and "Enter a valid email address." in page(response)
    assert not Invite.objects.exists()
    assert mailoutbox == []


def test_an_admin_can_invite_members_and_admins(client, bob, team):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    login(client, bob)

    client.post("/team/invite/", {"role": "member"})
    client.post("/team/invite/", {"role": "admin"})

    assert sorted(Invite.objects.values_list("role", flat=True)) == [Role.ADMIN, Role.MEMBER]


def test_an_admin_cannot_invite_an_owner(client, bob, team):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    login(client, bob)

    response = client.post("/team/invite/", {"role": "owner"})

    assert response.status_code == 400
    assert "You cannot give that role." in page(response)
    assert not Invite.objects.exists()


def test_a_member_cannot_create_invites(client_bob, team, mailoutbox):
    response = client_bob.post("/team/invite/", {"email": "erin@example.com", "role": "member"})

    assert response.status_code == 403
    assert "Only the team's owners and admins can do this." in unescape(response.content.decode())
    assert not Invite.objects.exists()
    assert mailoutbox == []


def test_a_member_does_not_see_the_invite_form(client_bob, team):
    body = client_bob.get("/team/").content.decode()

    assert 'action="/team/invite/"' not in body
    assert "Owners and admins can invite people" in body


def test_a_signed_in_person_accepts_an_invite_and_joins_with_its_role(client_charlie, alice, charlie, team):
    invite, link = invite_link(team, alice, role=Role.ADMIN)

    confirm = client_charlie.get(link)
    assert confirm.status_code == 200
    assert "Join Studio" in confirm.content.decode()
    assert role_of(charlie, team) is None  # opening the link alone joins nothing

    response = client_charlie.post(link)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert role_of(charlie, team) == Role.ADMIN
    invite.refresh_from_db()
    assert invite.accepted_by == charlie and invite.accepted_at is not None
    assert current_team_in_header(client_charlie.get("/team/")) == "Studio"


def test_someone_without_an_account_creates_one_through_an_invite_and_joins(client, alice, team):
    invite, link = invite_link(team, alice, email="erin@example.com")

    form = client.get(link)
    assert form.status_code == 200
    assert 'value="erin@example.com"' in form.content.decode()

    response = client.post(link, NEWCOMER)

    assert response.status_code == 302
    assert response["Location"] == "/"
    erin = User.objects.get(email="erin@example.com")
    assert (erin.first_name, erin.last_name) == ("Erin", "Ito")
    assert not erin.is_staff
    assert erin.check_password(PASSWORD)
    assert role_of(erin, team) == Role.MEMBER
    assert client.session["_auth_user_id"] == str(erin.pk)
    invite.refresh_from_db()
    assert invite.accepted_by == erin


def test_the_new_account_can_sign_in_later_by_email(client, alice, team):
    _, link = invite_link(team, alice)
    client.post(link, NEWCOMER)
    client.post("/logout/")

    response = client.post("/login/", {"username": "ERIN@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(email="erin@example.com").pk)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"password2": "something else"}, "The two passwords are not the same."),
        ({"password1": "password", "password2": "password"}, "This password is too common."),
        ({"email": "ALICE@example.com"}, "An account with this e-mail already exists: sign in instead."),
        ({"name": ""}, "This field is required."),
    ],
)
def test_an_invite_signup_with_bad_input_explains_and_uses_nothing(client, alice, team, changes, message):
    invite, link = invite_link(team, alice)

    response = client.post(link, {**NEWCOMER, **changes})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert User.objects.count() == 2  # alice and bob
    invite.refresh_from_db()
    assert invite.accepted_at is None
    assert "_auth_user_id" not in client.session


def test_an_empty_invite_signup_asks_for_every_field(client, alice, team):
    invite, link = invite_link(team, alice)

    response = client.post(link, {})

    assert response.status_code == 400
    assert response.content.decode().count("This field is required.") == 4
    invite.refresh_from_db()
    assert invite.accepted_at is None


def test_an_invite_works_only_once(client, alice, charlie, team, other_team):
    invite, link = invite_link(team, alice)
    client.post(link, NEWCOMER)
    client.post("/logout/")
    login(client, charlie)

    opened = client.get(link)
    posted = client.post(link)

    for response in (opened, posted):
        assert response.status_code == 410
        assert "This invite link has already been used." in response.content.decode()
    assert role_of(charlie, team) is None
    invite.refresh_from_db()
    assert invite.accepted_by.email == "erin@example.com"


def test_a_used_invite_creates_no_account_for_a_second_newcomer(client, alice, team):
    _, link = invite_link(team, alice)
    client.post(link, NEWCOMER)
    client.post("/logout/")

    response = client.post(link, {**NEWCOMER, "email": "frank@example.com"})

    assert response.status_code == 410
    assert not User.objects.filter(email="frank@example.com").exists()


def test_an_invite_expires_after_seven_days(client_charlie, alice, charlie, team):
    invite, link = invite_link(team, alice)
    now = timezone.now()
    Invite.objects.filter(pk=invite.pk).update(
        created_at=now - timedelta(days=7, seconds=1), expires_at=now - timedelta(seconds=1)
    )

    opened = client_charlie.get(link)
    posted = client_charlie.post(link)

    for response in (opened, posted):
        assert response.status_code == 410
        assert "This invite link has expired (links last 7 days)." in response.content.decode()
    assert role_of(charlie, team) is None


def test_an_invite_still_works_just_before_it_expires(client_charlie, alice, charlie, team):
    invite, link = invite_link(team, alice)
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() + timedelta(minutes=1))

    response = client_charlie.post(link)

    assert response.status_code == 302
    assert role_of(charlie, team) == Role.MEMBER


def test_an_expired_invite_creates_no_account(client, alice, team):
    invite, link = invite_link(team, alice)
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.post(link, NEWCOMER)

    assert response.status_code == 410
    assert not User.objects.filter(email="erin@example.com").exists()


def test_an_owner_withdraws_an_invite_and_its_link_stops_working(client, alice, charlie, team):
    invite, link = invite_link(team, alice)
    login(client, alice)

    response = client.post(f"/team/invites/{invite.pk}/revoke/")

    assert response.status_code == 302
    invite.refresh_from_db()
    assert invite.revoked_at is not None
    login(client, charlie)
    refused = client.post(link)
    assert refused.status_code == 410
    assert "This invite link was withdrawn." in refused.content.decode()
    assert role_of(charlie, team) is None


def test_a_member_cannot_withdraw_an_invite(client_bob, alice, team):
    invite, _ = invite_link(team, alice)

    response = client_bob.post(f"/team/invites/{invite.pk}/revoke/")

    assert response.status_code == 403
    invite.refresh_from_db()
    assert invite.revoked_at is None


def test_the_members_page_lists_pending_invites_only(client_alice, alice, team):
    pending, _ = invite_link(team, alice, email="pending@example.com")
    used, _ = invite_link(team, alice, email="used@example.com")
    Invite.objects.filter(pk=used.pk).update(accepted_at=timezone.now())

    body = client_alice.get("/team/").content.decode()

    assert "pending@example.com" in body
    assert "used@example.com" not in body


def test_an_unknown_invite_token_is_a_404_with_a_message(client, alice):
    response = client.get("/invite/not-a-real-token/")

    assert response.status_code == 404
    assert "This invite link is not valid. Check that you copied all of it." in response.content.decode()


def test_an_invite_for_a_team_you_are_already_in_is_not_used_up(client_bob, alice, bob, team):
    invite, link = invite_link(team, alice, role=Role.ADMIN)

    response = client_bob.post(link, follow=True)

    assert "You are already in Studio." in messages_of(response)
    assert role_of(bob, team) == Role.MEMBER
    invite.refresh_from_db()
    assert invite.accepted_at is None


# Roles


def membership(user, team):
    return Membership.objects.get(user=user, team=team)


def set_role(client, user, team, role):
    return client.post(f"/team/members/{membership(user, team).pk}/role/", {"role": role})


def test_an_owner_changes_a_members_role(client_alice, bob, team):
    response = set_role(client_alice, bob, team, "admin")

    assert role_of(bob, team) == Role.ADMIN
    assert "Bob is now admin." in messages_of(client_alice.get(response["Location"]))


def test_an_owner_can_make_another_owner(client_alice, bob, team):
    client_alice.post(f"/team/members/{membership(bob, team).pk}/role/", {"role": "owner"})

    assert role_of(bob, team) == Role.OWNER


def test_an_admin_changes_members_and_admins(client, alice, bob, team):
    dave = make_user("dave", first_name="Dave")
    Membership.objects.create(team=team, user=dave, role=Role.MEMBER)
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    login(client, bob)
    dave_membership = membership(dave, team)

    client.post(f"/team/members/{dave_membership.pk}/role/", {"role": "admin"})
    assert role_of(dave, team) == Role.ADMIN
    client.post(f"/team/members/{dave_membership.pk}/role/", {"role": "member"})
    assert role_of(dave, team) == Role.MEMBER


def test_an_admin_cannot_make_an_owner(client, bob, team):
    dave = make_user("dave")
    Membership.objects.create(team=team, user=dave, role=Role.MEMBER)
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    login(client, bob)

    response = client.post(f"/team/members/{membership(dave, team).pk}/role/", {"role": "owner"})

    assert response.status_code == 400 and "You cannot give that role." in page(response)
    assert role_of(dave, team) == Role.MEMBER
    assert role_of(bob, team) == Role.ADMIN


def test_an_admin_cannot_change_or_remove_an_owner(client, alice, bob, team):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    login(client, bob)
    alice_membership = membership(alice, team)

    demote = client.post(f"/team/members/{alice_membership.pk}/role/", {"role": "member"}, follow=True)
    remove = client.post(f"/team/members/{alice_membership.pk}/remove/", follow=True)

    assert demote.status_code == 403 and "Only an owner can change an owner's role." in page(demote)
    assert remove.status_code == 403 and "Only an owner can remove an owner." in page(remove)
    assert role_of(alice, team) == Role.OWNER


def test_an_admin_does_not_get_controls_for_owners(client, alice, bob, team):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    login(client, bob)

    body = client.get("/team/").content.decode()

    assert f'action="/team/members/{membership(alice, team).pk}/role/"' not in body
    assert f'action="/team/members/{membership(alice, team).pk}/remove/"' not in body
    assert '<option value="owner"' not in body


def test_a_member_cannot_change_roles(client_bob, alice, bob, team):
    own = client_bob.post(f"/team/members/{membership(bob, team).pk}/role/", {"role": "owner"})
    other = client_bob.post(f"/team/members/{membership(alice, team).pk}/role/", {"role": "member"})

    assert own.status_code == 403
    assert other.status_code == 403
    assert role_of(bob, team) == Role.MEMBER
    assert role_of(alice, team) == Role.OWNER


def test_a_member_cannot_remove_anyone(client_bob, alice, team):
    response = client_bob.post(f"/team/members/{membership(alice, team).pk}/remove/")

    assert response.status_code == 403
    assert role_of(alice, team) == Role.OWNER


def test_an_unknown_role_is_refused(client_alice, bob, team):
    response = set_role(client_alice, bob, team, "emperor")

    assert response.status_code == 400 and "You cannot give that role." in page(response)
    assert role_of(bob, team) == Role.MEMBER


def test_the_last_owner_cannot_be_demoted(client_alice, alice, team):
    response = set_role(client_alice, alice, team, "admin")

    assert response.status_code == 409
    assert "A team needs at least one owner: make someone else owner first." in page(response)
    assert role_of(alice, team) == Role.OWNER


def test_the_last_owner_cannot_leave(client_alice, alice, team):
    response = client_alice.post("/team/leave/")

    assert response.status_code == 409
    assert "first transfer ownership to another member (make them an owner here), or delete the team." in page(response)
    assert role_of(alice, team) == Role.OWNER


def test_the_last_owner_cannot_be_removed(client_alice, alice, team):
    response = client_alice.post(f"/team/members/{membership(alice, team).pk}/remove/")

    assert response.status_code == 409
    assert "first transfer ownership to another member (make them an owner here), or delete the team." in page(response)
    assert role_of(alice, team) == Role.OWNER


def test_an_owner_can_step_down_once_there_is_another_owner(client_alice, alice, bob, team):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)

    client_alice.post(f"/team/members/{membership(alice, team).pk}/role/", {"role": "member"})

    assert role_of(alice, team) == Role.MEMBER
    assert role_of(bob, team) == Role.OWNER


def test_an_owner_can_leave_once_there_is_another_owner(client_alice, alice, bob, team):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)

    response = client_alice.post("/team/leave/", follow=True)

    assert "You left Studio." in messages_of(response)
    assert role_of(alice, team) is None
    assert role_of(bob, team) == Role.OWNER


def test_a_member_can_leave(client_bob, bob, team):
    client_bob.post("/team/leave/")

    assert role_of(bob, team) is None


def test_an_owner_removes_a_member(client_alice, bob, team):
    response = client_alice.post(f"/team/members/{membership(bob, team).pk}/remove/", follow=True)

    assert "Bob was removed from Studio." in messages_of(response)
    assert role_of(bob, team) is None
    assert User.objects.filter(pk=bob.pk).exists()  # the account stays; only the membership goes

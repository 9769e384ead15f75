"""Deleting a team (issue 20): an owner types the team's name; its rows and files go, the ledger
stays; a wrong name, a teammate who is not an owner, or work still running changes nothing."""

from html import unescape

import pytest
from django.core.files.storage import default_storage

from gallery import pipeline
from gallery.models import (
    ApiFile,
    ApiKey,
    Charge,
    GalleryImage,
    GenerationTask,
    Invite,
    Membership,
    ReferenceImage,
    Role,
    Status,
    Team,
)
from tests.factories import make_team
from tests.factories import make_reference, make_task, run_until_final
from tests.gallery.api_kit import data_uri

SMALL = {"custom_size": (96, 96)}  # the sandbox draws this size: quick to make and to store


@pytest.fixture
def work(team, alice, bob, api):
    """Studio's work: a finished task with its image and reference (and their charges), a failed
    one, an API file, a key and an invite. Returns the names of every file stored for it."""
    done = run_until_final(make_task(team, alice, prompt="A lighthouse", references=[make_reference()], **SMALL))
    failed = run_until_final(make_task(team, bob, prompt="[sandbox:fail=request_cancelled] A fox", **SMALL))
    assert done.status == Status.COMPLETED and failed.status == Status.FAILED
    assert api.post("/api/v1/files/upload/base64", {"base64_data": data_uri()}).json()["success"] is True
    Invite.create(team, alice, email="guest@example.com")
    names = [
        *(name for pair in GalleryImage.objects.values_list("file", "thumbnail") for name in pair),
        *ReferenceImage.objects.values_list("file", flat=True),
        *ApiFile.objects.values_list("file", flat=True),
    ]
    assert len(names) == 4 and all(default_storage.exists(name) for name in names)
    return names


def page(response):
    return unescape(response.content.decode())


def ledger():
    return sorted(Charge.objects.values_list("pk", "user", "model", "n", "reserved_cost", "final_cost", "images"))


def test_the_sole_owner_deletes_the_team_by_typing_its_name(
    client_alice, alice, bob, team, work, django_capture_on_commit_callbacks
):
    spent = ledger()
    assert len(spent) == 2
    alice.last_team = team
    alice.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_alice.post("/team/delete/", {"name": "Studio"})

    assert response.status_code == 302 and response["Location"] == "/teams/new/"
    assert not Team.objects.filter(pk=team.pk).exists()
    assert not Membership.objects.exists() and not Invite.objects.exists() and not ApiKey.objects.exists()
    assert not GenerationTask.objects.exists() and not GalleryImage.objects.exists()
    assert not ReferenceImage.objects.exists() and not ApiFile.objects.exists()
    assert not any(default_storage.exists(name) for name in work)
    # The ledger stays, every charge with what it cost (no longer tied to a team or a task).
    assert ledger() == spent
    assert list(Charge.objects.values_list("team", "task").distinct()) == [(None, None)]
    alice.refresh_from_db(), bob.refresh_from_db()  # the people stay, in no team
    assert alice.last_team is None
    follow = client_alice.get(response["Location"])
    assert "Studio was deleted, with its images and files." in page(follow)


def test_after_deleting_the_owner_lands_in_their_next_team(client_alice, alice, team, charlie):
    night_shift = make_team("Night Shift", charlie, (alice, Role.MEMBER))

    response = client_alice.post("/team/delete/", {"name": "Studio"})

    assert response.status_code == 302 and response["Location"] == "/"
    assert client_alice.session["team_id"] == night_shift.pk
    follow = client_alice.get("/")
    assert "Studio was deleted, with its images and files. You are now in Night Shift." in page(follow)


def test_the_name_may_differ_only_in_spacing(client_alice, team):
    Team.objects.filter(pk=team.pk).update(name="Night  Shift")

    response = client_alice.post("/team/delete/", {"name": " Night Shift "})

    assert response.status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()


@pytest.mark.parametrize("typed", ["", "studio", "Studio team", "Rivals"])
def test_a_wrong_name_is_refused_and_changes_nothing(client_alice, team, work, typed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_alice.post("/team/delete/", {"name": typed})

    assert response.status_code == 400
    if typed:
        assert "That is not this team's name. Type “Studio” exactly as it is written to delete it." in page(response)
    assert Team.objects.filter(pk=team.pk).exists()
    assert GenerationTask.objects.count() == 2 and GalleryImage.objects.count() == 1 and ApiFile.objects.count() == 1
    assert Membership.objects.count() == 2 and ApiKey.objects.count() == 1
    assert all(default_storage.exists(name) for name in work)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER])
def test_only_an_owner_may_delete_the_team(client, team, bob, work, role):
    Membership.objects.filter(user=bob).update(role=role)
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")

    response = client.post("/team/delete/", {"name": "Studio"})

    assert response.status_code == 403
    assert Team.objects.filter(pk=team.pk).exists() and GenerationTask.objects.count() == 2
    assert all(default_storage.exists(name) for name in work)
    assert "Delete the team" not in page(client.get("/team/"))


def test_any_owner_may_delete_the_team_not_only_the_last(client, team, bob):
    Membership.objects.filter(user=bob).update(role=Role.OWNER)
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")

    assert client.post("/team/delete/", {"name": "Studio"}).status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()


def test_an_outsider_deletes_only_their_own_team(client_charlie, team, other_team):
    response = client_charlie.post("/team/delete/", {"name": "Studio"})  # not the name of Rivals

    assert response.status_code == 400
    assert Team.objects.filter(pk=team.pk).exists() and Team.objects.filter(pk=other_team.pk).exists()


def test_a_team_with_work_still_running_is_not_deleted(client_alice, alice, team):
    make_task(team, alice, prompt="Still queued")

    response = client_alice.post("/team/delete/", {"name": "Studio"})

    assert response.status_code == 409
    assert "1 of the team's tasks is still running or being wrapped up." in page(response)
    assert Team.objects.filter(pk=team.pk).exists() and GenerationTask.objects.count() == 1


def test_a_get_deletes_nothing(client_alice, team):
    assert client_alice.get("/team/delete/").status_code == 405
    assert Team.objects.filter(pk=team.pk).exists()


def test_files_go_only_once_the_rows_are_committed(team, work, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        pipeline.delete_team(team)

    assert all(default_storage.exists(name) for name in work)  # a rollback now would lose nothing
    for callback in callbacks:
        callback()
    assert not any(default_storage.exists(name) for name in work)


def test_other_teams_keep_their_work(client_alice, team, work, charlie, other_team):
    theirs = run_until_final(make_task(other_team, charlie, prompt="Rival work", **SMALL))
    files = [name for pair in theirs.images.values_list("file", "thumbnail") for name in pair]

    client_alice.post("/team/delete/", {"name": "Studio"})

    assert list(GenerationTask.objects.all()) == [theirs]
    assert all(default_storage.exists(name) for name in files)
    assert Charge.objects.filter(team=other_team).count() == 1


# The team page offers it to owners, and the last owner's refusal to leave names it.


def test_the_team_page_offers_owners_a_typed_confirmation(client_alice, team, work):
    body = page(client_alice.get("/team/"))

    assert "Delete the team" in body and 'action="/team/delete/"' in body
    assert 'data-confirm="Delete Studio for good?"' in body
    assert 'data-confirm-detail="Its 2 tasks, 1 image and their files go at once' in body
    assert "You are its only owner" in body


def test_the_last_owner_is_told_how_to_leave(client_alice, alice, team):
    response = client_alice.post("/team/leave/")

    assert response.status_code == 409
    assert "transfer ownership to another member (make them an owner here), or delete the team." in page(response)
    assert Membership.objects.get(user=alice, team=team).role == Role.OWNER


def test_destructive_buttons_ask_first_in_words(client_alice, team, bob):
    Invite.create(team, bob, email="guest@example.com")
    ApiKey.create(team, "Nightly batch", bob)

    members = page(client_alice.get("/team/"))
    api = page(client_alice.get("/api/"))

    assert 'data-confirm="Remove Bob from Studio?" data-confirm-detail="They lose access' in members
    assert 'data-confirm="Withdraw the invite for guest@example.com?"' in members
    assert 'data-confirm="Revoke the key “Nightly batch”?" data-confirm-detail="Scripts using it are refused' in api
    assert 'data-confirm="Make a new signing secret for “Nightly batch”?"' in api
    assert "confirm(" not in members + api

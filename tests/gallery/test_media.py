"""Private media: files reach members of the owning team only, as what they are, cached privately."""

import pytest
from django.core.files.storage import default_storage

from gallery.models import GalleryImage
from tests.factories import make_finished_task, make_image, make_reference, make_task

SECRET = "a lighthouse made of marmalade"


@pytest.fixture
def work(alice, team):
    """Studio's image (a JPEG) and a reference of its task."""
    task = make_task(team, alice, prompt=SECRET, references=[make_reference(name="mood.png")])
    return {"image": make_image(task, image_format="JPEG"), "reference": task.references.get()}


def read(name):
    with default_storage.open(name, "rb") as f:
        return f.read()


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_view_original_is_the_stored_file_byte_for_byte(client_bob, work):
    image = work["image"]

    response = client_bob.get(f"/media/image/{image.pk}/")

    assert response.status_code == 200
    assert body(response) == read(image.file.name)
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith('inline; filename="a-lighthouse-made-of-marmalade-')
    assert response["X-Content-Type-Options"] == "nosniff"
    assert set(response["Cache-Control"].split(", ")) == {"private", "max-age=3600"}
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["ETag"] == f'"{image.sha256}"'


def test_an_unchanged_original_is_not_sent_again(client_bob, work):
    image = work["image"]

    response = client_bob.get(f"/media/image/{image.pk}/", headers={"If-None-Match": f'"{image.sha256}"'})

    assert response.status_code == 304
    assert response.content == b""


def test_a_thumbnail_is_webp_and_cached_privately_for_long(client_bob, work):
    image = work["image"]

    response = client_bob.get(f"/media/image/{image.pk}/thumb/")

    assert body(response) == read(image.thumbnail.name)
    assert response["Content-Type"] == "image/webp"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert set(response["Cache-Control"].split(", ")) == {"max-age=31536000", "private", "immutable"}


def test_a_reference_is_served_as_its_stored_type(client_bob, work):
    reference = work["reference"]

    response = client_bob.get(f"/media/reference/{reference.pk}/")

    assert body(response) == read(reference.file.name)
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]


def test_a_file_missing_from_storage_is_a_404_not_a_500(client_bob, work):
    image = work["image"]
    default_storage.delete(image.file.name)
    default_storage.delete(image.thumbnail.name)

    assert client_bob.get(f"/media/image/{image.pk}/").status_code == 404
    assert client_bob.get(f"/media/image/{image.pk}/thumb/").status_code == 404


OUTSIDER_REQUESTS = [
    ("get", "/gallery/{image}/"),
    ("get", "/media/image/{image}/"),
    ("get", "/media/image/{image}/thumb/"),
    ("get", "/media/image/{image}/download/"),
    ("get", "/media/reference/{reference}/"),
    ("post", "/gallery/{image}/favourite/"),
]


@pytest.mark.parametrize("method, url", OUTSIDER_REQUESTS)
def test_an_outsider_gets_404_for_every_view_of_another_teams_image(client_charlie, work, method, url):
    url = url.format(image=work["image"].pk, reference=work["reference"].pk)

    response = getattr(client_charlie, method)(url, {"favourite": "1"} if method == "post" else None)

    assert response.status_code == 404
    assert SECRET.encode() not in body(response)
    assert not GalleryImage.objects.get(pk=work["image"].pk).favourite


def test_an_outsider_gets_404_for_a_zip_or_a_delete_of_another_teams_image(client_charlie, work):
    image = work["image"]

    zip_response = client_charlie.post("/gallery/download/", {"ids": [image.pk]})
    ask = client_charlie.post("/gallery/delete/", {"ids": [image.pk]})
    delete = client_charlie.post("/gallery/delete/", {"ids": [image.pk], "confirmed": "1"})

    assert zip_response.status_code == ask.status_code == delete.status_code == 404
    assert SECRET.encode() not in zip_response.content + ask.content + delete.content
    assert GalleryImage.objects.filter(pk=image.pk).exists()
    assert default_storage.exists(image.file.name)


@pytest.mark.parametrize("method, url", OUTSIDER_REQUESTS)
def test_signed_out_people_are_sent_to_sign_in(client, alice, work, method, url):
    url = url.format(image=work["image"].pk, reference=work["reference"].pk)

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    "url",
    [
        "/gallery/999999/",
        "/media/image/999999/",
        "/media/image/999999/thumb/",
        "/media/image/999999/download/",
        "/media/reference/999999/",
        "/gallery/abc/",
        "/media/image/-1/",
    ],
)
def test_unknown_ids_are_404(client_alice, url):
    assert client_alice.get(url).status_code == 404


def test_a_member_of_both_teams_sees_an_image_only_from_its_own_team(
    client_alice, alice, charlie, other_team
):
    from gallery.models import Membership, Role

    Membership.objects.create(team=other_team, user=alice, role=Role.MEMBER)
    theirs = make_image(make_finished_task(other_team, charlie, prompt=SECRET))
    session = client_alice.session
    session["team_id"] = alice.memberships.exclude(team=other_team).get().team_id
    session.save()

    assert client_alice.get(f"/media/image/{theirs.pk}/").status_code == 404
    client_alice.post("/teams/switch/", {"team": other_team.pk})
    assert client_alice.get(f"/media/image/{theirs.pk}/").status_code == 200

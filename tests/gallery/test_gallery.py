"""The gallery page and the image page: keyset pages, search, filters, favourites, deletion."""

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.files.storage import default_storage

from gallery.models import GalleryImage, GenerationTask
from gallery.views.gallery import PAGE_SIZE
from tests.factories import make_finished_task, make_image, make_images, make_reference, make_task

NOON = datetime(2025, 3, 14, 12, 0, tzinfo=dt_timezone.utc)


def shown_ids(response):
    """The ids of the image tiles in a gallery response, in order."""
    return [int(i) for i in re.findall(r'<figure class="tile" id="image-(\d+)"', response.content.decode())]


def next_url(response):
    found = re.search(r'<div id="more"[^>]*>\s*<a href="([^"]+)"', response.content.decode())
    return found.group(1).replace("&amp;", "&") if found else None


def all_pages(client, url="/gallery/", htmx=True, arrive=None):
    """Follows "load more" to the end; `arrive(page_number)` may add images meanwhile."""
    seen, page = [], 0
    response = client.get(url)
    while True:
        seen += shown_ids(response)
        url = next_url(response)
        if not url:
            return seen
        page += 1
        if arrive:
            arrive(page)
        response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
        assert response.status_code == 200


# The grid and its pages


def test_the_gallery_shows_the_count_and_the_newest_images_first(client_alice, alice, team):
    images = make_images(team, alice, 5)

    response = client_alice.get("/gallery/")

    body = response.content.decode()
    assert response.status_code == 200
    assert re.search(r"<strong>5</strong> images", body)
    assert shown_ids(response) == [image.pk for image in images]
    assert f'src="/media/image/{images[0].pk}/thumb/"' in body
    assert f'href="/gallery/{images[0].pk}/"' in body


def test_the_gallery_is_empty_with_a_hint(client_alice):
    body = client_alice.get("/gallery/").content.decode()

    assert "No images yet." in body
    assert 'id="more"' not in body


def test_pages_hold_every_image_once_in_order(client_alice, alice, team):
    images = make_images(team, alice, PAGE_SIZE * 2 + 5)

    seen = all_pages(client_alice)

    assert seen == [image.pk for image in images]


def test_pages_hold_every_image_once_while_new_ones_arrive(client_alice, alice, team):
    # Images made in the same microsecond are ordered by id: the cursor must break such ties.
    images = make_images(team, alice, PAGE_SIZE * 3, newest=NOON, step=timedelta(0))
    images += make_images(team, alice, 20, newest=NOON - timedelta(hours=1))
    arrived = []

    def arrive(page):
        arrived.extend(make_images(team, alice, 7, newest=NOON + timedelta(minutes=page)))

    seen = all_pages(client_alice, arrive=arrive)

    assert len(seen) == len(set(seen)) == len(images)
    assert set(seen) == {image.pk for image in images}
    assert not set(seen) & {image.pk for image in arrived}


def test_without_javascript_load_more_opens_the_next_page_as_a_full_page(client_alice, alice, team):
    images = make_images(team, alice, PAGE_SIZE + 3)

    first = client_alice.get("/gallery/")
    second = client_alice.get(next_url(first))

    assert "<html" in second.content.decode()
    assert "showing older images" in second.content.decode()
    assert shown_ids(second) == [image.pk for image in images[PAGE_SIZE:]]


def test_scrolling_gets_the_next_tiles_and_a_new_sentinel_out_of_band(client_alice, alice, team):
    make_images(team, alice, PAGE_SIZE * 2 + 1)
    first = client_alice.get("/gallery/")

    response = client_alice.get(next_url(first), headers={"HX-Request": "true"})

    body = response.content.decode()
    assert "<html" not in body and 'id="filters"' not in body
    assert len(shown_ids(response)) == PAGE_SIZE
    assert re.search(r'<div id="more" class="load-more" hx-swap-oob="true">', body)
    assert "cursor=" in next_url(response)
    assert "HX-Request" in response["Vary"]


def test_the_filter_bar_gets_the_results_alone(client_alice, alice, team):
    make_images(team, alice, 3)

    response = client_alice.get("/gallery/?q=Image", headers={"HX-Request": "true"})

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"')
    assert "<strong>3</strong> images match" in body


def test_the_gallery_shows_only_the_current_teams_images(client_charlie, alice, team, other_team, charlie):
    make_images(team, alice, 3, prompt="secret moonbeam {i}")
    theirs = make_images(other_team, charlie, 2)

    response = client_charlie.get("/gallery/")

    assert shown_ids(response) == [image.pk for image in theirs]
    assert "moonbeam" not in response.content.decode()


# Search and filters


def test_search_finds_words_in_prompts_case_insensitively(client_alice, alice, team):
    fox = make_image(make_finished_task(team, alice, prompt="A red Fox reading a newspaper"))
    make_image(make_finished_task(team, alice, prompt="A lighthouse at dusk"))

    response = client_alice.get("/gallery/?q=fox")

    assert shown_ids(response) == [fox.pk]
    assert "<strong>1</strong> image matches ·" in response.content.decode()


@pytest.mark.parametrize(
    "count, words", [(1, "<strong>1</strong> image matches"), (2, "<strong>2</strong> images match")]
)
def test_the_count_of_matches_is_singular_or_plural(client_alice, alice, team, count, words):
    make_images(team, alice, count, prompt="fox {i}")
    make_images(team, alice, 2, prompt="owl {i}")

    assert words in client_alice.get("/gallery/?q=fox").content.decode()
    assert "<strong>3</strong> images</p>" not in client_alice.get("/gallery/").content.decode()


def test_the_quality_filter_offers_only_tiers_some_model_has(client_alice, alice, team, monkeypatch):
    from gallery import catalog

    offered = {q for model in catalog.MODELS.values() for q in model.qualities}
    body = client_alice.get("/gallery/").content.decode()
    select = re.search(r'<select name="quality"[^>]*>(.*?)</select>', body, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"', select) == [""] + [q for q in catalog.QUALITIES if q in offered]

    monkeypatch.setattr(catalog, "QUALITIES", (*catalog.QUALITIES, "8K"))  # a tier no model has
    body = client_alice.get("/gallery/").content.decode()
    assert 'value="8K"' not in body
    assert client_alice.get("/gallery/?quality=8K").status_code == 400


@pytest.mark.parametrize(
    "query, expected",
    [
        ("ratio=16:9", ["wide"]),
        ("ratio=auto", ["auto"]),
        ("ratio=custom", ["custom"]),
        ("quality=4K", ["wide"]),
        ("quality=2K", ["square", "auto"]),
        ("ratio=1:1&quality=2K", ["square"]),
    ],
)
def test_filters_by_ratio_and_quality(client_alice, alice, team, query, expected):
    made = {
        "square": make_image(make_finished_task(team, alice, size="1:1", quality="2K")),
        "wide": make_image(make_finished_task(team, alice, size="16:9", quality="4K")),
        "auto": make_image(make_finished_task(team, alice, size="auto", quality="2K")),
        "custom": make_image(
            make_finished_task(team, alice, size="auto", quality="2K", custom_width=1920, custom_height=1080)
        ),
    }

    response = client_alice.get(f"/gallery/?{query}")

    assert sorted(shown_ids(response)) == sorted(made[name].pk for name in expected)


def test_filters_by_member(client_bob, alice, bob, team):
    make_images(team, alice, 3)
    bobs = make_images(team, bob, 2, prompt="Bob's {i}")

    response = client_bob.get(f"/gallery/?member={bob.pk}")

    assert shown_ids(response) == [image.pk for image in bobs]
    assert f'<option value="{bob.pk}" selected>Bob</option>' in response.content.decode()


def test_filters_by_favourites(client_alice, alice, team):
    images = make_images(team, alice, 4)
    GalleryImage.objects.filter(pk__in=[images[1].pk, images[3].pk]).update(favourite=True)

    response = client_alice.get("/gallery/?favourites=on")

    assert shown_ids(response) == [images[1].pk, images[3].pk]


def test_filters_by_a_date_range_with_both_days_included(client_alice, alice, team):
    day = timedelta(days=1)
    images = {
        name: make_images(team, alice, 1, newest=NOON + offset)[0]
        for name, offset in (("before", -2 * day), ("first", -day), ("last", day), ("after", 2 * day))
    }

    response = client_alice.get("/gallery/?since=2025-03-13&until=2025-03-15")
    only_since = client_alice.get("/gallery/?since=2025-03-15")

    assert shown_ids(response) == [images["last"].pk, images["first"].pk]
    assert shown_ids(only_since) == [images["after"].pk, images["last"].pk]


def test_dates_are_days_in_the_instances_time_zone(client_alice, alice, team, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # UTC+9: 20:00 UTC on the 14th is the 15th in Tokyo
    late = make_images(team, alice, 1, newest=datetime(2025, 3, 14, 20, 0, tzinfo=dt_timezone.utc))

    assert shown_ids(client_alice.get("/gallery/?since=2025-03-15&until=2025-03-15")) == [late[0].pk]
    assert shown_ids(client_alice.get("/gallery/?until=2025-03-14")) == []


def test_filters_combine_and_stay_in_every_link(client_alice, alice, bob, team):
    make_images(team, bob, 2, prompt="fox {i}")
    mine = make_images(team, alice, PAGE_SIZE + 2, prompt="fox {i}", size="4:3")
    make_images(team, alice, 2, prompt="owl {i}", size="4:3")
    query = f"q=fox&member={alice.pk}&ratio=4:3"

    first = client_alice.get(f"/gallery/?{query}")
    seen = all_pages(client_alice, f"/gallery/?{query}")

    assert seen == [image.pk for image in mine]
    assert next_url(first).startswith(f"/gallery/?q=fox&member={alice.pk}&ratio=4%3A3&cursor=")
    assert (
        f'href="/gallery/{mine[0].pk}/?q=fox&amp;member={alice.pk}&amp;ratio=4%3A3"' in first.content.decode()
    )


@pytest.mark.parametrize(
    "query, message",
    [
        ("since=2025-02-30", "Enter a valid date."),
        ("until=yesterday", "Enter a valid date."),
        ("since=2025-03-02&until=2025-03-01", "The end date is before the start date."),
        ("member=999999", "Select a valid choice."),
        ("member=abc", "Select a valid choice."),
        ("ratio=7:5", "Select a valid choice."),
        ("quality=8K", "Select a valid choice."),
        ("cursor=garbage", "This link to a further page is broken"),
        ("cursor=99999999999999999999.1", "This link to a further page is broken"),
        ("cursor=-5.3", "This link to a further page is broken"),
        ("q=" + "x" * 201, "Ensure this value has at most 200 characters"),
    ],
)
def test_bad_filters_explain_themselves_with_a_400(client_alice, alice, team, query, message):
    make_images(team, alice, 2)

    response = client_alice.get(f"/gallery/?{query}")

    assert response.status_code == 400
    assert message in response.content.decode()
    assert shown_ids(response) == []


def test_a_cursor_far_in_the_past_or_future_is_just_an_empty_or_full_page(client_alice, alice, team):
    images = make_images(team, alice, 3)

    assert shown_ids(client_alice.get("/gallery/?cursor=0.0")) == []
    assert shown_ids(client_alice.get("/gallery/?cursor=200000000000000000.1")) == [i.pk for i in images]


def test_another_members_filter_value_never_shows_another_teams_people(client_alice, charlie, other_team):
    response = client_alice.get(f"/gallery/?member={charlie.pk}")

    assert response.status_code == 400
    assert "Charlie" not in response.content.decode()


# Favourites


def test_a_favourite_is_set_and_unset_with_a_plain_form(client_bob, alice, team):
    image = make_images(team, alice, 1)[0]

    on = client_bob.post(
        f"/gallery/{image.pk}/favourite/", {"favourite": "1", "next": "/gallery/?favourites=on"}
    )
    image.refresh_from_db()
    assert image.favourite
    assert on.status_code == 302 and on["Location"] == "/gallery/?favourites=on"

    off = client_bob.post(f"/gallery/{image.pk}/favourite/", {"favourite": "0"})
    image.refresh_from_db()
    assert not image.favourite
    assert off["Location"] == f"/gallery/{image.pk}/"


def test_a_favourite_with_htmx_answers_with_the_new_button(client_alice, alice, team):
    image = make_images(team, alice, 1)[0]

    response = client_alice.post(
        f"/gallery/{image.pk}/favourite/", {"favourite": "1", "compact": "1"}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.startswith('<form class="favourite-form"')
    assert 'aria-pressed="true"' in body and 'name="favourite" value="0"' in body
    assert 'name="compact" value="1"' in body


def test_a_favourite_never_redirects_off_site(client_alice, alice, team):
    image = make_images(team, alice, 1)[0]

    response = client_alice.post(
        f"/gallery/{image.pk}/favourite/", {"favourite": "1", "next": "https://evil.example/"}
    )

    assert response["Location"] == f"/gallery/{image.pk}/"


def test_favourite_needs_a_post(client_alice, alice, team):
    image = make_images(team, alice, 1)[0]

    assert client_alice.get(f"/gallery/{image.pk}/favourite/").status_code == 405


# The image page


def test_the_image_page_shows_the_image_and_all_its_facts(client_alice, alice, team):
    task = make_finished_task(
        team,
        alice,
        prompt="A fox <in> a café",
        size="16:9",
        quality="4K",
        n=3,
        priority="fast",
        price_per_image="0.0222",
    )
    task.sent_prompt = "A fox <in> a café\n\nGenerate 3 different images."
    task.save()
    image = make_image(task, index=1, image_format="JPEG", width=96, height=54)
    sibling = make_image(task, index=0)

    body = client_alice.get(f"/gallery/{image.pk}/").content.decode()

    assert f'<img src="/media/image/{image.pk}/"' in body
    assert "A fox &lt;in&gt; a café" in body
    assert "Generate 3 different images." in body
    for fact in (
        "16:9 · 4K",
        "3 images asked",
        "fast priority",
        "96 × 54",
        "JPEG",
        "sandbox",
        "$0.0222 per image",
        "Alice",
    ):
        assert fact in body, fact
    assert f'href="/media/image/{image.pk}/download/"' in body
    assert f'href="/?remix={task.pk}"' in body
    assert f'href="/?use_image={image.pk}"' in body
    assert f'href="/gallery/{sibling.pk}/"' in body
    assert 'src="/static/gallery/gallery.js"' in body and "<script>" not in body


def test_the_image_page_shows_the_tasks_references(client_alice, alice, team):
    task = make_task(team, alice, references=[make_reference(name="mood.png")])
    image = make_image(task)
    reference = task.references.get()

    body = client_alice.get(f"/gallery/{image.pk}/").content.decode()

    assert f'src="/media/reference/{reference.pk}/"' in body
    assert "Reference 1: mood.png" in body


def test_newer_and_older_follow_the_gallery_view_it_was_opened_from(client_alice, alice, bob, team):
    images = make_images(team, alice, 5)
    GalleryImage.objects.filter(pk__in=[images[0].pk, images[2].pk, images[4].pk]).update(favourite=True)

    plain = client_alice.get(f"/gallery/{images[2].pk}/").content.decode()
    favourites = client_alice.get(f"/gallery/{images[2].pk}/?favourites=on").content.decode()

    assert f'rel="prev" href="/gallery/{images[1].pk}/"' in plain
    assert f'rel="next" href="/gallery/{images[3].pk}/"' in plain
    assert f'rel="prev" href="/gallery/{images[0].pk}/?favourites=on"' in favourites
    assert f'rel="next" href="/gallery/{images[4].pk}/?favourites=on"' in favourites


def test_the_newest_and_oldest_images_have_one_neighbour(client_alice, alice, team):
    images = make_images(team, alice, 2)

    newest = client_alice.get(f"/gallery/{images[0].pk}/").content.decode()
    oldest = client_alice.get(f"/gallery/{images[1].pk}/").content.decode()

    assert 'rel="prev"' not in newest and 'rel="next"' in newest
    assert 'rel="prev"' in oldest and 'rel="next"' not in oldest


def test_the_image_page_ignores_broken_filters_rather_than_failing(client_alice, alice, team):
    images = make_images(team, alice, 2)

    response = client_alice.get(f"/gallery/{images[0].pk}/?since=nonsense&cursor=x")

    assert response.status_code == 200
    assert f'rel="next" href="/gallery/{images[1].pk}/"' in response.content.decode()


# Deleting


def test_deleting_without_confirmation_only_asks(client_alice, alice, team):
    images = make_images(team, alice, 2)

    response = client_alice.post("/gallery/delete/", {"ids": [images[0].pk, images[1].pk]})

    body = response.content.decode()
    assert response.status_code == 200
    assert "Delete 2 images?" in body
    assert "They are removed" in body and "Their tasks stay" in body
    assert 'name="confirmed" value="1"' in body
    assert GalleryImage.objects.count() == 2


def test_deleting_one_image_asks_in_the_singular(client_alice, alice, team):
    image = make_images(team, alice, 1)[0]

    body = client_alice.post("/gallery/delete/", {"ids": [image.pk]}).content.decode()

    assert "<title>Delete 1 image ·" in body
    assert "Delete 1 image?" in body and ">Delete 1 image</button>" in body
    assert "It is removed from the gallery" in body and "Its task stays in the history" in body
    assert "They are" not in body and "images?" not in body


def test_the_image_pages_title_names_the_image(client_alice, alice, team):
    long = make_image(make_finished_task(
        team, alice, prompt="A lighthouse at dusk,\nlong exposure, waves breaking on the rocks below the cliffs"))
    short = make_image(make_finished_task(team, alice, prompt="A red fox"))

    def title(image):
        return re.search(r"<title>(.*?)</title>", client_alice.get(f"/gallery/{image.pk}/").content.decode()).group(1)

    assert title(long) == "A lighthouse at dusk, long exposure, waves breaking on the… · Gallery · Studio"
    assert title(short) == "A red fox · Gallery · Studio"


def test_deletes_ask_in_the_sites_dialog_with_words_that_fit(client_alice, alice, team):
    image = make_images(team, alice, 1)[0]

    page = client_alice.get(f"/gallery/{image.pk}/").content.decode()
    gallery = client_alice.get("/gallery/").content.decode()

    assert 'data-confirm="Delete this image?" data-confirm-button="Delete image"' in page
    assert "Its task stays in the history" in page
    assert "data-confirm-delete" not in page + gallery and "<dialog" not in page + gallery  # site.js makes it
    assert re.search(r'formaction="/gallery/delete/"[^>]*data-confirm=', gallery)


def test_deleting_removes_rows_and_files_after_commit_and_keeps_the_task(
    client_alice, alice, team, django_capture_on_commit_callbacks
):
    task = make_finished_task(team, alice)
    first, second = make_image(task, 0), make_image(task, 1)
    kept = make_image(make_finished_task(team, alice))
    names = [first.file.name, first.thumbnail.name, second.file.name, second.thumbnail.name]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_alice.post(
            "/gallery/delete/",
            {"ids": [first.pk, second.pk], "confirmed": "1", "next": "/gallery/?favourites=on"},
        )
        assert all(default_storage.exists(name) for name in names)  # not before the commit
    for callback in callbacks:
        callback()

    assert response.status_code == 302 and response["Location"] == "/gallery/?favourites=on"
    assert list(GalleryImage.objects.all()) == [kept]
    assert not any(default_storage.exists(name) for name in names)
    assert default_storage.exists(kept.file.name) and default_storage.exists(kept.thumbnail.name)
    assert GenerationTask.objects.filter(pk=task.pk).exists()
    messages = [str(m) for m in client_alice.get("/gallery/").context["messages"]]
    assert "Deleted 2 images." in messages


def test_files_stay_when_the_deleting_transaction_rolls_back(alice, team, django_capture_on_commit_callbacks):
    from django.db import transaction

    image = make_image(make_finished_task(team, alice))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            GalleryImage.objects.filter(pk=image.pk).delete_with_files()
            raise RuntimeError("something failed after the delete")

    assert callbacks == []
    assert GalleryImage.objects.filter(pk=image.pk).exists()
    assert default_storage.exists(image.file.name)


def test_a_selection_with_another_teams_image_deletes_nothing(client_alice, alice, charlie, team, other_team):
    mine = make_images(team, alice, 1)[0]
    theirs = make_images(other_team, charlie, 1)[0]

    response = client_alice.post("/gallery/delete/", {"ids": [mine.pk, theirs.pk], "confirmed": "1"})

    assert response.status_code == 404
    assert GalleryImage.objects.count() == 2


@pytest.mark.parametrize(
    "ids",
    [
        [],
        ["abc"],
        ["1.5"],
        ["-3"],
        ["9" * 30],
        [str(i) for i in range(1, 502)],
        [str(i) for i in range(1, 1200)],
    ],
)
def test_a_bad_selection_to_delete_is_a_400(client_alice, alice, team, ids):
    make_images(team, alice, 1)

    response = client_alice.post("/gallery/delete/", {"ids": ids, "confirmed": "1"})

    assert response.status_code == 400
    assert GalleryImage.objects.count() == 1


def test_deleting_needs_a_post(client_alice, alice, team):
    image = make_images(team, alice, 1)[0]

    assert client_alice.get(f"/gallery/delete/?ids={image.pk}&confirmed=1").status_code == 405
    assert GalleryImage.objects.count() == 1


# Cost


def test_a_big_gallery_counts_up_to_a_limit(client_alice, alice, team, monkeypatch):
    monkeypatch.setattr("gallery.views.gallery.COUNT_LIMIT", 5)
    make_images(team, alice, 5)
    assert "<strong>5</strong> images" in client_alice.get("/gallery/").content.decode()

    make_images(team, alice, 2)

    assert "<strong>5+</strong> images" in client_alice.get("/gallery/").content.decode()


def test_a_deep_page_makes_the_same_queries_as_the_second(client_alice, alice, team):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    images = make_images(team, alice, PAGE_SIZE * 5)
    htmx = {"HX-Request": "true"}

    with CaptureQueriesContext(connection) as second:
        client_alice.get(f"/gallery/?cursor={images[PAGE_SIZE - 1].cursor}", headers=htmx)
    with CaptureQueriesContext(connection) as deep:
        client_alice.get(f"/gallery/?cursor={images[PAGE_SIZE * 4 - 1].cursor}", headers=htmx)

    assert len(deep) == len(second) <= 5  # session, user, memberships, members, the page: no count
    assert [q["sql"] for q in deep][-1].count("LIMIT 49") == 1

"""Searching prompts in the gallery: what a search finds, on SQLite (FTS5) and PostgreSQL alike."""

import pytest
from django.db import connection

from gallery import pipeline
from gallery.models import GalleryImage, GenerationTask
from gallery.models import images as image_models
from gallery.views import gallery as gallery_views
from gallery.views.gallery import PAGE_SIZE
from tests.factories import make_finished_task, make_image, make_images
from tests.gallery.test_gallery import all_pages, shown_ids


@pytest.fixture(params=["few matches", "many matches"])
def either_way(request, monkeypatch):
    """SQLite looks matches up by id when they are few and scans the team's images newest first
    when they are many: every search test runs both ways (PostgreSQL ignores this)."""
    if request.param == "many matches":
        monkeypatch.setattr(image_models, "MANY_MATCHES", 1)


@pytest.fixture
def fox(team, alice):
    return make_image(make_finished_task(team, alice, prompt="A red Fox reading a newspaper"))


@pytest.fixture
def lighthouse(team, alice):
    return make_image(make_finished_task(team, alice, prompt="A lighthouse at dusk, long exposure"))


def search(client, text):
    response = client.get("/gallery/", {"q": text})
    assert response.status_code == 200
    return shown_ids(response)


@pytest.mark.parametrize("text", ["fox", "FOX", "red fox", "fox red", "Fox, RED!", "  red   fox  "])
def test_it_finds_every_word_in_any_order_whatever_the_case(client_alice, fox, lighthouse, either_way, text):
    assert search(client_alice, text) == [fox.pk]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL matches English word forms, not prefixes")
@pytest.mark.parametrize("text", ["lightho", "light", "li", "light dus", "LIGHTHOUSE AT"])
def test_a_word_may_be_the_start_of_a_longer_one(client_alice, fox, lighthouse, either_way, text):
    assert search(client_alice, text) == [lighthouse.pk]


@pytest.mark.parametrize("text", ["red owl", "owl", "house", "newspapers red owl", "foxglove", "lighthousekeeper"])
def test_every_word_must_be_there(client_alice, fox, lighthouse, either_way, text):
    assert search(client_alice, text) == []


@pytest.mark.parametrize(
    "text",
    ['"fox', 'fox"', '"fox"', "fox*", "*fox", "(fox)", "fox)", "fox^", "^fox", ":fox", "fox:*", "{fox}",
     "[fox]", "fox;", "fox --", "'fox", "fox'", "fox\\", "%fox%", "_fox_", "fox/", "fox.", "!fox", "-fox",
     "+fox", "<fox>", "fox&", "|fox|", "fox\u00a0", "fox\t"],
)
def test_query_syntax_in_a_search_is_only_punctuation(client_alice, fox, lighthouse, either_way, text):
    assert search(client_alice, text) == [fox.pk]


@pytest.mark.parametrize(
    "text",
    ['"', "'", '""', "*", "(", ")", "%", "_", "\\", ":", "^", "&|!", "--", "—", "' OR 1=1 --", "NEAR(",
     'fox" OR "', "AND", "OR", "NOT", "red NEAR/2 fox", "prompt:fox", "rowid:1", "x" * 200, "🦊"],
)
def test_no_search_is_ever_an_error(client_alice, fox, lighthouse, either_way, text):
    search(client_alice, text)  # 200, whatever it finds


def test_other_forms_of_a_word_are_found_on_either_database(client_alice, fox, lighthouse, either_way):
    assert search(client_alice, "foxes") == [fox.pk]
    assert search(client_alice, "lighthouses") == [lighthouse.pk]
    assert search(client_alice, "Lighthouses at DUSK") == [lighthouse.pk]
    assert search(client_alice, "exposures dusk") == [lighthouse.pk]
    assert search(client_alice, "reads newspapers") == [fox.pk]


@pytest.mark.parametrize("text", ["running", "runs", "run", "RUNNING"])
def test_running_finds_a_dog_that_runs(client_alice, team, alice, lighthouse, either_way, text):
    dog = make_image(make_finished_task(team, alice, prompt="A dog runs along the beach"))
    jogger = make_image(make_finished_task(team, alice, prompt="Running shoes on a wet street"))

    assert search(client_alice, text) == [jogger.pk, dog.pk]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the FTS5 index is SQLite's")
def test_the_sqlite_index_stems_with_the_porter_tokenizer(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'gallery_image_search'")
        assert "porter unicode61" in cursor.fetchone()[0]


def test_a_search_of_punctuation_alone_finds_nothing(client_alice, fox, lighthouse, either_way):
    response = client_alice.get("/gallery/", {"q": "?!"})
    assert shown_ids(response) == []
    assert "<strong>0</strong> images match" in response.content.decode()


def test_it_finds_only_the_current_teams_images(client_alice, client, fox, other_team, charlie, either_way):
    theirs = make_image(make_finished_task(other_team, charlie, prompt="A red fox in the snow"))
    response = client_alice.get("/gallery/", {"q": "fox"})

    assert shown_ids(response) == [fox.pk]
    assert "<strong>1</strong> image match" in response.content.decode()
    client.force_login(charlie, backend="gallery.auth.EmailOrUsernameBackend")
    assert search(client, "fox") == [theirs.pk]


def test_a_deleted_image_is_no_longer_found(client_alice, team, alice, fox, either_way):
    sibling = make_image(fox.task, index=1)
    GalleryImage.objects.filter(pk=fox.pk).delete()

    assert search(client_alice, "fox") == [sibling.pk]


def test_a_deleted_task_takes_its_images_out_of_the_search(client_alice, fox, lighthouse, either_way):
    assert pipeline.delete(fox.task)

    assert search(client_alice, "fox") == []
    assert search(client_alice, "lighthouse") == [lighthouse.pk]


def test_a_changed_prompt_is_found_by_its_new_words_only(client_alice, fox, either_way):
    GenerationTask.objects.filter(pk=fox.task_id).update(prompt="A grey owl at night")

    assert search(client_alice, "fox") == []
    assert search(client_alice, "owl night") == [fox.pk]


def test_matches_come_newest_first_page_after_page(client_alice, team, alice, either_way):
    foxes = make_images(team, alice, PAGE_SIZE + 5, prompt="fox {i}")
    make_images(team, alice, 3, prompt="owl {i}")

    assert all_pages(client_alice, "/gallery/?q=fox") == [image.pk for image in foxes]


def test_a_search_combines_with_the_other_filters(client_alice, team, alice, bob, either_way):
    make_images(team, bob, 2, prompt="fox {i}")
    mine = make_images(team, alice, 3, prompt="fox {i}")

    assert search_with(client_alice, f"q=fox&member={alice.pk}") == [image.pk for image in mine]


def search_with(client, query):
    response = client.get(f"/gallery/?{query}")
    assert response.status_code == 200
    return shown_ids(response)


def test_a_search_counts_its_matches_up_to_its_own_limit(client_alice, team, alice, monkeypatch, either_way):
    monkeypatch.setattr(gallery_views, "SEARCH_COUNT_LIMIT", 3)
    make_images(team, alice, 5, prompt="fox {i}")

    searched = client_alice.get("/gallery/?q=fox").content.decode()
    everything = client_alice.get("/gallery/").content.decode()

    assert "<strong>3+</strong> images match" in searched
    assert "<strong>5</strong> images" in everything


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the FTS5 index is SQLite's")
def test_the_sqlite_index_follows_every_image_through_its_triggers(team, alice):
    fox = make_image(make_finished_task(team, alice, prompt="A red fox"))
    bulk = make_images(team, alice, 3, prompt="owl {i}")

    def indexed():
        with connection.cursor() as cursor:
            cursor.execute("SELECT rowid, prompt FROM gallery_image_search ORDER BY rowid")
            return cursor.fetchall()

    assert indexed() == [(fox.pk, "A red fox"), *((image.pk, f"owl {i}") for i, image in enumerate(bulk))]
    GalleryImage.objects.filter(pk=bulk[0].pk).delete()
    GenerationTask.objects.filter(pk=fox.task_id).update(prompt="A blue fox")
    assert indexed() == [(fox.pk, "A blue fox"), (bulk[1].pk, "owl 1"), (bulk[2].pk, "owl 2")]

"""The gallery in a real browser: scrolling loads more, filters land in the URL, a selection
downloads as a ZIP, deletion asks first, and the image page steps with the arrow keys."""

import json
import re
import zipfile

import pytest
from playwright.sync_api import expect

from gallery.models import GalleryImage
from gallery.views.gallery import PAGE_SIZE
from tests.factories import PASSWORD
from tests.factories import make_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, username="alice"):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("E-mail or username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/")


def tiles(page):
    return page.locator("#grid figure.tile")


def test_scrolling_to_the_end_loads_the_next_page(live_server, page, alice, team):
    images = make_images(team, alice, PAGE_SIZE + 7)
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/gallery/")
    expect(page.locator(".gallery-count")).to_contain_text(f"{PAGE_SIZE + 7} images")
    expect(tiles(page)).to_have_count(PAGE_SIZE)
    page.locator("#more").scroll_into_view_if_needed()

    expect(tiles(page)).to_have_count(PAGE_SIZE + 7)
    expect(page.locator("#more")).to_contain_text("That's every image")
    ids = tiles(page).evaluate_all("tiles => tiles.map(t => Number(t.id.replace('image-', '')))")
    assert ids == [image.pk for image in images]
    expect(page).to_have_url(f"{live_server.url}/gallery/")  # scrolling does not change the URL


def test_filtering_by_member_updates_the_grid_and_the_url(live_server, page, alice, bob, team):
    make_images(team, alice, 4, prompt="Alice's {i}")
    bobs = make_images(team, bob, 2, prompt="Bob's {i}")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    expect(tiles(page)).to_have_count(6)

    page.get_by_label("Member").select_option(label="Bob")

    expect(tiles(page)).to_have_count(2)
    expect(page).to_have_url(f"{live_server.url}/gallery/?member={bob.pk}")
    expect(page.locator(".gallery-count")).to_contain_text("2 images match")
    expect(page.locator('#selection input[name="next"]')).to_have_value(f"/gallery/?member={bob.pk}")
    page.reload()  # the URL is the view: a bookmark or a shared link shows the same
    expect(tiles(page)).to_have_count(2)
    expect(page.get_by_label("Member")).to_have_value(str(bob.pk))
    expect(tiles(page).first.locator("img")).to_have_attribute("alt", bobs[0].task.prompt)


def test_searching_prompts_as_you_type(live_server, page, alice, team):
    make_images(team, alice, 3, prompt="lighthouse {i}")
    make_images(team, alice, 2, prompt="red fox {i}")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")

    page.get_by_placeholder("Search prompts…").fill("fox")

    expect(tiles(page)).to_have_count(2)
    expect(page).to_have_url(f"{live_server.url}/gallery/?q=fox")


def test_select_three_with_a_shift_click_and_download_them_as_a_zip(live_server, page, alice, team):
    images = make_images(team, alice, 5)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    bar = page.locator("[data-selection-bar]")
    expect(bar).to_be_hidden()

    boxes = page.locator('#grid input[name="ids"]')
    boxes.nth(1).check()
    boxes.nth(3).click(modifiers=["Shift"])

    expect(bar).to_be_visible()
    expect(bar).to_contain_text("3 selected")
    with page.expect_download() as info:
        bar.get_by_role("button", name="Download ZIP").click()
    download = info.value
    assert download.suggested_filename.endswith("-3-images.zip")
    archive = zipfile.ZipFile(download.path())
    manifest = json.loads(archive.read("manifest.json"))
    assert [entry["image_id"] for entry in manifest["images"]] == [image.pk for image in images[1:4]]
    assert len(archive.namelist()) == 4


def test_select_all_on_screen_and_clear(live_server, page, alice, team):
    make_images(team, alice, 4)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    bar = page.locator("[data-selection-bar]")

    page.locator('#grid input[name="ids"]').first.check()
    bar.get_by_role("button", name="Select all on screen").click()
    expect(bar).to_contain_text("4 selected")
    page.keyboard.press("Escape")

    expect(bar).to_be_hidden()
    expect(page.locator('#grid input[name="ids"]:checked')).to_have_count(0)


def test_deleting_a_selection_asks_first(live_server, page, alice, team):
    images = make_images(team, alice, 3)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    page.locator('#grid input[name="ids"]').first.check()

    page.locator("[data-selection-bar]").get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete 1 image?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert GalleryImage.objects.count() == 3

    page.locator("[data-selection-bar]").get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete 1 image").click()

    expect(page.get_by_text("Deleted 1 image.")).to_be_visible()
    expect(tiles(page)).to_have_count(2)
    assert not GalleryImage.objects.filter(pk=images[0].pk).exists()


def test_the_image_page_steps_with_arrow_keys_and_links_to_the_studio(live_server, page, alice, team):
    images = make_images(team, alice, 3)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")

    tiles(page).nth(1).locator("a.tile-open").click()  # opens the viewer (tests/e2e/test_viewer_confirm.py)
    page.get_by_role("dialog").get_by_role("link", name="Open image page").click()
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[1].pk}/")
    use = page.get_by_role("link", name="Use as reference")
    expect(use).to_have_attribute("href", f"/?use_image={images[1].pk}")
    expect(page.get_by_role("link", name="Remix")).to_have_attribute("href", f"/?remix={images[1].task_id}")

    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[2].pk}/")
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[1].pk}/")
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[0].pk}/")
    page.keyboard.press("ArrowLeft")  # the newest image has no newer one: nothing happens

    page.get_by_role("link", name="Use as reference").click()
    expect(page).to_have_url(f"{live_server.url}/?use_image={images[0].pk}")


def test_favourite_toggles_in_place(live_server, page, alice, team):
    image = make_images(team, alice, 1)[0]
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/{image.pk}/")

    page.get_by_role("button", name="Add to favourites").click()

    expect(page.get_by_role("button", name="Favourite")).to_have_attribute("aria-pressed", "true")
    expect(page).to_have_url(f"{live_server.url}/gallery/{image.pk}/")
    image.refresh_from_db()
    assert image.favourite


def test_download_from_the_image_page_names_the_file_after_the_prompt(live_server, page, alice, team):
    image = make_images(team, alice, 1, prompt="A lighthouse at dusk")[0]
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/{image.pk}/")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()

    assert re.fullmatch(r"a-lighthouse-at-dusk-\d{4}-\d\d-\d\d-1\.png", info.value.suggested_filename)


def test_an_image_used_as_a_reference_is_sent_with_the_next_task(live_server, page, alice, team):
    from gallery.models import GenerationTask
    from tests.factories import make_finished_task, make_image

    image = make_image(make_finished_task(team, alice, prompt="A teal teapot"), width=300, height=200, colour="teal")
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/{image.pk}/")
    page.locator("[data-use-as-reference]").click()

    expect(page).to_have_url(f"{live_server.url}/?use_image={image.pk}")
    expect(page.locator(".ref-tile")).to_have_count(1)
    expect(page.locator("[data-ref-count]")).to_have_text("1 of 10")
    page.locator("textarea[name=prompt]").fill("The same teapot on a picnic blanket")
    page.locator("button.generate").click()

    expect(page.locator("#history .task-row").first).to_contain_text("picnic blanket")
    expect(page.locator(".ref-tile")).to_have_count(1)  # kept for the next try, now the task's stored copy
    task = GenerationTask.objects.get(prompt="The same teapot on a picnic blanket")
    assert task.references.get().sha256 == image.sha256

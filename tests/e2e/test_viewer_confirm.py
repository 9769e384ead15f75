"""The gallery's feel in a real browser: the full-screen viewer (arrows, Esc, focus back), one
styled confirmation for every destructive action (never the browser's own confirm()), one Tab
stop per tile with keys for the rest, tiles that show the whole picture, one request a search."""

import json
import re
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import expect

from gallery.models import GalleryImage
from tests.e2e.test_gallery import sign_in, tiles
from tests.factories import make_finished_task, make_image, make_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def native_dialogs(page):
    """Every alert/confirm/prompt the browser itself shows (there should be none)."""
    seen = []

    def dismiss(dialog):
        seen.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", dismiss)
    return seen


def three(team, alice):
    """Newest first: a wide, a square and a tall image, each of its own prompt."""
    made = [
        make_image(make_finished_task(team, alice, prompt="A tall lighthouse"), width=90, height=160),
        make_image(make_finished_task(team, alice, prompt="A square fox"), width=120, height=120),
        make_image(make_finished_task(team, alice, prompt="A wide beach at dusk"), width=320, height=180),
    ]
    return made[::-1]


def original(image_pk):
    return re.compile(rf"/media/image/{image_pk}/$")


def viewer(page):
    return page.locator("dialog.viewer")


# The viewer ------------------------------------------------------------------------------------


def test_the_viewer_opens_from_the_gallery_steps_with_arrows_and_gives_focus_back(
    live_server, page, alice, team, native_dialogs
):
    images = three(team, alice)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")

    tiles(page).nth(0).locator("a.tile-open").click()

    expect(viewer(page)).to_be_visible()
    expect(viewer(page).locator(".viewer-image")).to_have_attribute("src", original(images[0].pk))
    expect(viewer(page)).to_contain_text("A wide beach at dusk")
    expect(viewer(page)).to_contain_text("1 of 3")
    box = viewer(page).bounding_box()
    size = page.viewport_size
    assert (box["width"], box["height"]) == (size["width"], size["height"])  # full screen
    expect(page).to_have_url(f"{live_server.url}/gallery/")

    page.keyboard.press("ArrowRight")
    expect(viewer(page)).to_contain_text("A square fox")
    expect(viewer(page)).to_contain_text("2 of 3")
    expect(viewer(page).locator(".viewer-image")).to_have_attribute("src", original(images[1].pk))
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # the last one: it stays
    expect(viewer(page)).to_contain_text("3 of 3")
    expect(viewer(page)).to_contain_text("A tall lighthouse")
    page.keyboard.press("ArrowLeft")
    expect(viewer(page)).to_contain_text("2 of 3")
    viewer(page).get_by_role("button", name="Previous image").click()
    expect(viewer(page)).to_contain_text("1 of 3")
    viewer(page).get_by_role("button", name="Next image").click()
    expect(viewer(page)).to_contain_text("2 of 3")

    page.keyboard.press("Escape")

    expect(viewer(page)).to_be_hidden()
    expect(tiles(page).nth(1).locator("a.tile-open")).to_be_focused()  # the image last shown
    expect(page).to_have_url(f"{live_server.url}/gallery/")

    # Enter on a focused tile opens it too; "Open image page" leads on.
    page.keyboard.press("Enter")
    expect(viewer(page)).to_contain_text("A square fox")
    viewer(page).get_by_role("link", name="Open image page").click()
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[1].pk}/")
    assert not native_dialogs


def test_a_click_with_a_modifier_stays_a_link(live_server, page, context, alice, team):
    image = make_images(team, alice, 1)[0]
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")

    with context.expect_page() as opened:
        tiles(page).first.locator("a.tile-open").click(modifiers=["Shift"])  # a new window

    opened.value.wait_for_load_state()
    assert opened.value.url == f"{live_server.url}/gallery/{image.pk}/"
    expect(viewer(page)).to_have_count(0)


def test_the_viewer_works_on_tiles_loaded_later(live_server, page, alice, team):
    make_images(team, alice, 3, prompt="owl {i}")
    fox = make_image(make_finished_task(team, alice, prompt="A red fox"))
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")

    page.get_by_placeholder("Search prompts…").fill("fox")  # htmx swaps the results
    expect(tiles(page)).to_have_count(1)
    tiles(page).first.locator("a.tile-open").click()

    expect(viewer(page)).to_be_visible()
    expect(viewer(page).locator(".viewer-image")).to_have_attribute("src", original(fox.pk))
    expect(viewer(page).locator(".viewer-position")).to_have_text("")  # one image: no "1 of 1"
    expect(viewer(page).get_by_role("button", name="Next image")).to_be_hidden()


def test_the_image_pages_viewer_closes_with_esc(live_server, page, alice, team):
    images = three(team, alice)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/{images[1].pk}/")
    stage = page.locator(".image-stage a[data-viewer]")

    stage.click()

    expect(viewer(page)).to_be_visible()
    expect(viewer(page).locator(".viewer-image")).to_have_attribute("src", original(images[1].pk))
    expect(viewer(page).get_by_role("link", name="Open image page")).to_be_hidden()  # it is this page
    page.keyboard.press("ArrowRight")  # inside the viewer the arrows do not leave the page
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[1].pk}/")

    page.keyboard.press("Escape")

    expect(viewer(page)).to_be_hidden()
    expect(stage).to_be_focused()
    page.keyboard.press("ArrowRight")  # closed: the arrows step through the gallery again
    expect(page).to_have_url(f"{live_server.url}/gallery/{images[2].pk}/")


# One styled confirmation -------------------------------------------------------------------------


def test_deleting_on_the_image_page_asks_in_the_styled_dialog(live_server, page, alice, team, native_dialogs):
    image, other = make_images(team, alice, 2)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/{image.pk}/")
    delete = page.locator(".image-actions").get_by_role("button", name="Delete")

    delete.click()
    dialog = page.get_by_role("dialog", name="Delete this image?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("It is removed from the gallery and from storage for everyone in Studio")
    confirm = dialog.get_by_role("button", name="Delete image")
    expect(confirm).to_have_class(re.compile(r"\bdanger\b"))
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()

    delete.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    assert GalleryImage.objects.filter(pk=image.pk).exists()

    delete.click()
    confirm.click()

    expect(page.get_by_text("Deleted 1 image.")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/gallery/{other.pk}/")
    assert not GalleryImage.objects.filter(pk=image.pk).exists()
    assert not native_dialogs


def test_a_keyboard_selection_is_deleted_after_the_styled_dialog(live_server, page, alice, team, native_dialogs):
    images = make_images(team, alice, 4)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    bar = page.locator("[data-selection-bar]")

    tiles(page).nth(1).locator("a.tile-open").focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+Space")  # the range from the last one
    expect(bar).to_contain_text("3 selected")
    page.keyboard.press("x")  # and the last one off again
    expect(bar).to_contain_text("2 selected")

    bar.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete 2 images?")
    expect(dialog).to_contain_text("They are removed")
    dialog.get_by_role("button", name="Cancel").click()
    assert GalleryImage.objects.count() == 4
    bar.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete 2 images").click()

    expect(page.get_by_text("Deleted 2 images.")).to_be_visible()
    assert sorted(GalleryImage.objects.values_list("pk", flat=True)) == sorted([images[0].pk, images[3].pk])
    assert not native_dialogs


ECHO = "/echo-for-the-test/"


def add_form(page, html):
    page.evaluate(
        """(html) => {
            const holder = document.createElement("div");
            holder.innerHTML = html;
            document.querySelector("main").prepend(holder);
            htmx.process(holder);
        }""",
        html,
    )


def test_any_form_with_data_confirm_asks_and_keeps_its_submitter(live_server, page, alice, team, native_dialogs):
    sent = []

    def echo(route):
        sent.append((route.request.headers.get("hx-request"), parse_qs(route.request.post_data or "")))
        route.fulfill(status=200, content_type="text/html", body="<p id='echoed'>Echoed</p>")

    page.route(f"**{ECHO}*", echo)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    add_form(page, f"""
        <form id="plain" method="post" action="{ECHO}" data-confirm="Archive everything?"
              data-confirm-detail="Nothing is lost." data-confirm-button="Archive">
          <input name="field" value="1">
          <button type="submit" name="action" value="keep">Keep</button>
          <button type="submit" name="action" value="archive">Archive it</button>
        </form>
        <form id="enhanced" hx-post="{ECHO}" hx-target="this" hx-swap="outerHTML" data-confirm="Revoke the key?">
          <button type="submit" name="verb" value="revoke">Revoke</button>
        </form>""")

    page.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog", name="Revoke the key?")
    expect(dialog.get_by_role("button", name="Revoke")).to_be_visible()  # the button's own words
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name="Revoke")).to_be_focused()
    page.get_by_role("button", name="Revoke").click()
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.locator("#echoed")).to_be_visible()
    assert sent == [("true", {"verb": ["revoke"], "confirmed": ["1"]})]

    page.get_by_role("button", name="Archive it").click()
    dialog = page.get_by_role("dialog", name="Archive everything?")
    expect(dialog).to_contain_text("Nothing is lost.")
    dialog.get_by_role("button", name="Archive").click()
    page.wait_for_url(f"**{ECHO}")
    assert sent[1] == (None, {"field": ["1"], "action": ["archive"], "confirmed": ["1"]})
    assert not native_dialogs


def test_hx_confirm_asks_in_the_same_styled_dialog(live_server, page, alice, team, native_dialogs):
    sent = []

    def echo(route):
        sent.append(route.request.method)
        route.fulfill(status=200, content_type="text/html", body="<p id='echoed'>Gone</p>")

    page.route(f"**{ECHO}*", echo)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    add_form(page, f"""
        <div data-confirm-button="Remove member" data-confirm-detail="They can be invited again.">
          <button type="button" hx-post="{ECHO}" hx-target="this" hx-swap="outerHTML"
                  hx-confirm="Remove Bob from the team?">Remove</button>
        </div>""")
    remove = page.get_by_role("button", name="Remove", exact=True)

    remove.click()
    dialog = page.get_by_role("dialog", name="Remove Bob from the team?")
    expect(dialog).to_contain_text("They can be invited again.")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(remove).to_be_focused()
    page.wait_for_timeout(200)
    assert sent == []

    remove.click()
    dialog.get_by_role("button", name="Remove member").click()

    expect(page.locator("#echoed")).to_be_visible()
    assert sent == ["POST"]
    assert not native_dialogs


# Tiles --------------------------------------------------------------------------------------------


def test_each_tile_is_one_tab_stop_with_keys_for_the_rest(live_server, page, alice, team):
    images = make_images(team, alice, 4)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    links = page.locator("#grid a.tile-open")

    links.first.focus()
    stops = []
    for _ in range(5):
        stops.append(page.evaluate(
            "() => { const a = document.activeElement; const t = a.closest('.tile'); "
            "return t ? `${t.id}:${a.tagName}` : 'out'; }"))
        page.keyboard.press("Tab")
    assert stops == [f"image-{image.pk}:A" for image in images] + ["out"]
    page.keyboard.press("Shift+Tab")
    expect(links.last).to_be_focused()

    # The keys are told (visibly while a tile has keyboard focus, and to screen readers).
    expect(page.locator("[data-tile-keys]")).to_be_visible()
    expect(links.first).to_have_attribute("aria-describedby", "tile-keys")
    page.keyboard.press("f")
    expect(tiles(page).last.locator(".favourite")).to_have_attribute("aria-pressed", "true")
    expect(links.last).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("[data-selection-bar]")).to_contain_text("1 selected")
    page.keyboard.press("Home")
    expect(links.first).to_be_focused()
    assert GalleryImage.objects.get(pk=images[3].pk).favourite


def test_a_tile_shows_the_whole_picture(live_server, page, alice, team):
    three(team, alice)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    expect(tiles(page)).to_have_count(3)
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth)")

    shapes = tiles(page).evaluate_all("""tiles => tiles.map(tile => {
        const img = tile.querySelector('img'); const r = img.getBoundingClientRect(); const t = tile.getBoundingClientRect();
        return {natural: img.naturalWidth / img.naturalHeight, shown: r.width / r.height,
                fit: getComputedStyle(img).objectFit,
                inside: r.left >= t.left - 1 && r.right <= t.right + 1 && r.top >= t.top - 1 && r.bottom <= t.bottom + 1};
    })""")

    assert [round(shape["natural"], 2) for shape in shapes] == [1.78, 1.0, 0.56]
    for shape in shapes:
        assert shape["shown"] == pytest.approx(shape["natural"], rel=0.03), shapes  # not cropped to fit a row
        assert shape["inside"], shapes  # nor clipped by its tile
        assert shape["fit"] in ("contain", "fill", "scale-down"), shapes


# One request a search ---------------------------------------------------------------------------


def test_a_search_asks_the_server_once(live_server, page, alice, team):
    make_images(team, alice, 2, prompt="owl {i}")
    make_image(make_finished_task(team, alice, prompt="A red fox"))
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    asked = []
    page.on("request", lambda r: "/gallery/?" in r.url and r.headers.get("hx-request") and asked.append(r.url))

    search = page.get_by_placeholder("Search prompts…")
    search.fill("fox")
    search.press("Enter")  # before the typing pause is over
    expect(tiles(page)).to_have_count(1)
    search.press("Enter")  # again: the results already show it
    page.keyboard.press("Tab")  # leaving the box fires "change"
    page.wait_for_timeout(700)
    assert asked == [f"{live_server.url}/gallery/?q=fox"]

    search.fill("owl")  # typing alone, then leaving the box
    page.wait_for_timeout(600)
    search.blur()
    expect(tiles(page)).to_have_count(2)
    page.wait_for_timeout(300)
    assert asked[1:] == [f"{live_server.url}/gallery/?q=owl"]

    page.get_by_label("Member").select_option(label="Alice")
    expect(page).to_have_url(re.compile(r"member="))
    page.wait_for_timeout(300)
    assert len(asked) == 3
    assert json.dumps(asked)  # (for the failure message)


def test_after_the_back_button_everything_still_works(live_server, page, alice, bob, team):
    make_images(team, alice, 2, prompt="owl {i}")
    make_image(make_finished_task(team, bob, prompt="A red fox"))
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    page.get_by_placeholder("Search prompts…").fill("fox")
    expect(tiles(page)).to_have_count(1)

    page.go_back()  # htmx puts its copy of the page back

    expect(tiles(page)).to_have_count(3)
    expect(page).to_have_url(f"{live_server.url}/gallery/")
    tiles(page).nth(1).locator("a.tile-open").click()
    expect(viewer(page)).to_be_visible()
    expect(viewer(page)).to_contain_text("2 of 3")
    page.keyboard.press("Escape")
    expect(viewer(page)).to_be_hidden()
    expect(page.locator("dialog.viewer")).to_have_count(1)
    page.keyboard.press("Space")
    expect(page.locator("[data-selection-bar]")).to_contain_text("1 selected")
    page.get_by_label("Member").select_option(label="Bob")
    expect(tiles(page)).to_have_count(1)
    expect(page).to_have_url(f"{live_server.url}/gallery/?member={bob.pk}")
    ratio = tiles(page).first.evaluate("t => getComputedStyle(t).getPropertyValue('--ar')")
    assert ratio.strip() == "1.3333"  # the tiles are justified again (64×48)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_in_the_viewer_or_the_confirmation(scheme, browser, live_server, alice, team):
    from tests.e2e.axe import violations

    images = three(team, alice)
    context = browser.new_context(color_scheme=scheme, bypass_csp=True)  # axe is injected
    page = context.new_page()
    sign_in(page, live_server)
    found = {}
    page.goto(f"{live_server.url}/gallery/")
    tiles(page).first.locator("a.tile-open").focus()
    page.keyboard.press("Space")
    found["tile focused, one selected"] = violations(page)
    page.keyboard.press("Enter")
    expect(viewer(page)).to_be_visible()
    page.keyboard.press("ArrowRight")
    found["viewer"] = violations(page)
    page.goto(f"{live_server.url}/gallery/{images[0].pk}/")
    page.locator(".image-actions").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    found["confirmation"] = violations(page)
    context.close()
    assert not any(found.values()), found

"""Picking a Seedream model in a real browser: the offered tiers, priorities, n and extras follow
the model, a setting it cannot take is changed with a note, the size and cost follow, and a
comparison of three models runs side by side (issue 13)."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from gallery import catalog
from gallery.models import GenerationTask
from tests.e2e.test_studio import LIVE, errors_for, sign_in, worker  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SD40, SD45, LITE, PRO = catalog.SD40, catalog.SD45, catalog.SD50_LITE, catalog.SD50_PRO


@pytest.fixture
def priced(settings):
    """Sandbox prices as EvoLink's, so the summary's cost changes with the model."""
    settings.PRICE_OVERRIDES = {
        f"sandbox:{SD40}": Decimal("0.0222"), f"sandbox:{SD45}": Decimal("0.035"),
        f"sandbox:{LITE}": Decimal("0.032"), f"sandbox:{PRO}": Decimal("0.05"),
    }


def pick(page, short_name):
    page.locator("label.model-option", has_text=short_name).click()


def offered(page, name):
    """The values of a radio group's labels that are shown."""
    return [label.get_attribute(f"data-{name}") for label in page.locator(f"[data-{name}]").all() if label.is_visible()]


def test_switching_models_changes_what_is_offered_and_says_what_it_changed(live_server, page, team, priced):
    sign_in(page, live_server)
    note, summary = page.locator("[data-model-note]"), page.locator("[data-resolved]")
    expect(page.locator(f"input[name=model][value='{SD40}']")).to_be_checked()
    expect(page.locator("label.model-option", has_text="4.5")).to_contain_text("$0.035 / image")
    assert offered(page, "quality") == ["1K", "2K", "4K"]
    expect(page.locator("[data-char-count]")).to_have_text("0 / 2,000 characters")

    # 4.0 at 1K with fast priority and three images; 4.5 has neither 1K nor fast.
    page.locator("label[data-quality='1K']").click()
    page.locator("input[name=n]").fill("3")
    page.locator("details.advanced summary").click()
    page.locator("label[data-priority='fast']").click()
    pick(page, "4.5")
    expect(note).to_have_text("Seedream 4.5 has no 1K: switched to 2K. Seedream 4.5 takes only the standard "
                              "priority: switched to it.")
    expect(page.locator("input[name=quality][value='2K']")).to_be_checked()
    expect(page.locator("input[name=priority][value='standard']")).to_be_checked()
    assert offered(page, "quality") == ["2K", "4K"] and offered(page, "priority") == ["standard"]

    # 4.5 at 4K, 21:9: the size and the cost follow.
    page.locator("label[data-quality='4K']").click()
    page.locator("label.ratio-option", has_text="21:9").first.click()
    expect(summary).to_have_text("6240×2656 · up to 3 images · estimated cost up to 3 × $0.035 = $0.105")

    # Lite offers web search and a file format; switching away clears web search, out loud.
    pick(page, "5.0 Lite")
    expect(note).to_have_text("Seedream 5.0 Lite has no 4K: switched to 2K.")
    expect(page.get_by_label("Let the model search the web (billed extra)")).to_be_visible()
    page.get_by_label("Let the model search the web (billed extra)").check()
    expect(page.get_by_label("Add the provider's watermark")).to_be_hidden()
    pick(page, "4.0")
    expect(note).to_have_text("Seedream 4.0 has no web search setting: cleared.")
    expect(page.get_by_label("Let the model search the web (billed extra)")).to_be_hidden()
    expect(page.get_by_label("Let the model search the web (billed extra)")).not_to_be_checked()

    # Pro: one image, its own tiers, a longer prompt, a background.
    pick(page, "5.0 Pro")
    expect(note).to_have_text("Seedream 5.0 Pro makes one image per task: set to 1.")
    expect(page.locator("input[name=n]")).to_have_value("1")
    assert offered(page, "quality") == ["1K", "1.5K", "2K"]
    expect(page.locator("[data-char-count]")).to_have_text("0 / 4,000 characters")
    expect(page.locator("[data-extra=background]")).to_be_visible()
    expect(page.locator("[data-model-strength]")).to_contain_text("Seedream 5.0 Pro: Best quality")
    expect(summary).to_have_text("3136×1344 · up to 1 image · estimated cost up to 1 × $0.05 = $0.05")

    # The browser's refusal of n > 1 for Pro uses the server's words.
    page.locator("input[name=n]").fill("2")
    expect(errors_for(page, "n")).to_have_text("Seedream 5.0 Pro makes one image per task: set the number of images to 1.")
    page.locator("input[name=n]").fill("1")

    # 4.5 at 4K 21:9 is what the server receives.
    pick(page, "4.5")
    page.locator("label[data-quality='4K']").click()
    page.locator("textarea[name=prompt]").fill("A harbour at dawn, wide")
    page.locator("button.generate").click()
    expect(page.locator("#history .task-row")).to_have_count(1)
    task = GenerationTask.objects.get()
    assert (task.model, task.quality, task.size, task.price_per_image) == (SD45, "4K", "21:9", Decimal("0.035"))
    expect(page.locator("#history .task-row .model-chip")).to_have_text("Seedream 4.5")
    # The fresh form keeps the model and its settings for the next prompt.
    expect(page.locator(f"input[name=model][value='{SD45}']")).to_be_checked()
    expect(page.locator("input[name=quality][value='4K']")).to_be_checked()


def test_a_comparison_of_three_models_runs_side_by_side(live_server, page, team, priced, worker):  # noqa: F811
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill("A paper boat on a puddle")
    page.locator("details.compare-models summary").click()
    for name in ("4.0", "4.5", "5.0 Lite"):
        page.locator(".compare-options label", has_text=name).click()
    expect(page.locator("[data-model-strength]")).to_have_text(
        "Comparing 4.0, 4.5 and 5.0 Lite: one task per model, side by side in the history.")
    assert [q for q in ("1K", "2K", "3K", "4K") if page.locator(f"label[data-quality='{q}']").is_visible()] == ["2K"]
    expect(page.locator("[data-resolved]")).to_contain_text("3 models · up to 3 images · estimated cost up to $0.0892")
    page.locator("button.generate").click()

    group = page.locator("#history .compare-group")
    expect(group).to_have_count(1)
    rows = group.locator(".task-row")
    expect(rows.locator(".task-prompt")).to_have_text(["Seedream 4.0", "Seedream 4.5", "Seedream 5.0 Lite"])
    for row in rows.all():
        expect(row).to_have_attribute("data-status", "completed", timeout=LIVE)
        expect(row.locator(".thumbs img")).to_have_count(1)
    boxes = [row.bounding_box() for row in rows.all()]
    assert len({round(box["y"]) for box in boxes}) == 1, boxes  # one line, side by side
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]

    group.get_by_role("link", name="Compare 3 models side by side").click()
    expect(page.get_by_role("heading", name="Compare 3 models")).to_be_visible()
    columns = page.locator(".compare-column")
    expect(columns.locator("h2")).to_have_text(["Seedream 4.0", "Seedream 4.5", "Seedream 5.0 Lite"])
    expect(columns.locator(".compare-images img")).to_have_count(3)
    tops = {round(column.bounding_box()["y"]) for column in columns.all()}
    assert len(tops) == 1

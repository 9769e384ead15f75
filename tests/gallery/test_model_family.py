"""The Seedream family (issue 13): each model's rules enforced by the server with messages that
name the model, the exact bodies EvoLink and BytePlus receive for each, prices per model and
provider, the model kept everywhere a task shows, and comparisons of one prompt on several models."""

import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.utils.html import escape
from PIL import Image

from gallery import catalog, offers, options, pipeline
from gallery.images.decode import inspect_image
from gallery.models import GenerationTask, Status
from tests.factories import make_task, run_until_final
from tests.gallery.test_submit_form import accepted_task, assert_rejected, png, upload

SD40, SD45, LITE, PRO = catalog.SD40, catalog.SD45, catalog.SD50_LITE, catalog.SD50_PRO
NAMES = {SD40: "Seedream 4.0", SD45: "Seedream 4.5", LITE: "Seedream 5.0 Lite", PRO: "Seedream 5.0 Pro"}


def transparent_png(size=(64, 64)):
    im = Image.new("RGBA", size, (255, 0, 0, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def checked(data, name="cut-out.png"):
    from gallery.forms.studio import CheckedReference

    return CheckedReference(name=name, data=data, info=inspect_image(data))


# The table ------------------------------------------------------------------------------------


def test_every_model_of_the_issue_is_in_the_table_with_its_ids():
    assert {m.id: m.provider_ids["byteplus"] for m in catalog.MODELS.values()} == {
        SD40: "seedream-4-0-250828", SD45: "seedream-4-5-251128",
        LITE: "seedream-5-0-260128", PRO: "seedream-5-0-pro-260628",
    }
    assert {m.id: m.name for m in catalog.MODELS.values()} == NAMES


@pytest.mark.parametrize("model", catalog.MODELS.values(), ids=lambda m: m.short_name)
def test_every_offered_tier_and_ratio_resolves_to_a_size_the_model_accepts(model):
    for quality in model.qualities:
        for ratio in options.RATIOS:
            if ratio == "auto":
                continue
            width, height = options.pixel_size(ratio, quality)
            assert model.min_pixels <= width * height <= model.max_pixels, (ratio, quality)
            assert width % 16 == 0 and height % 16 == 0


def test_the_studio_script_reads_the_same_rules():
    rules = options.studio_rules()["models"]
    assert rules[PRO]["qualities"] == ["1K", "1.5K", "2K"] and rules[PRO]["maxImages"] == 1
    assert rules[SD45]["pixels"] == [3_686_400, 16_777_216] and rules[SD45]["priorities"] == ["standard"]
    assert rules[LITE]["extras"] == {"output_format": ["png", "jpeg"], "web_search": True, "watermark": False,
                                     "background": []}


# The server's rules, per model ------------------------------------------------------------------


@pytest.mark.parametrize("model", list(NAMES))
@pytest.mark.parametrize("quality", catalog.QUALITIES)
def test_each_tier_is_accepted_only_by_the_models_that_offer_it(submit, model, quality):
    response = submit(model=model, quality=quality, size="1:1")
    offered = catalog.MODELS[model].qualities
    if quality in offered:
        task = accepted_task(response)
        assert (task.model, task.quality) == (model, quality)
    else:
        choices = " or ".join(", ".join(offered).rsplit(", ", 1))
        assert_rejected(response, f"{NAMES[model]} has no {quality} quality: choose {choices}.")


BOUNDARIES = {  # model: (smallest accepted, just too small, largest accepted, just too large)
    SD40: ("1280x720", "1279x720", "4096x4096", "4097x4096"),
    SD45: ("2560x1440", "2559x1440", "4096x4096", "4097x4096"),
    LITE: ("2560x1440", "2559x1440", "3072x3072", "3073x3072"),
    PRO: ("1280x720", "1279x720", "2830x1634", "2831x1634"),  # 4,624,220 pixels exactly
}


@pytest.mark.parametrize("model", list(NAMES))
@pytest.mark.parametrize("side", ["smallest", "too-small", "largest", "too-large"])
def test_custom_sizes_are_checked_against_each_models_pixel_range(submit, model, side):
    size = BOUNDARIES[model][["smallest", "too-small", "largest", "too-large"].index(side)]
    quality = catalog.MODELS[model].default_quality
    response = submit(model=model, custom_size=size, quality=quality)
    if side in ("smallest", "largest"):
        task = accepted_task(response)
        assert f"{task.custom_width}x{task.custom_height}" == size
    else:
        m = catalog.MODELS[model]
        width, height = map(int, size.split("x"))
        assert_rejected(response, f"{width}×{height} is {width * height:,} pixels; {NAMES[model]} takes custom "
                                  f"sizes of {m.min_pixels:,} to {m.max_pixels:,} pixels.")


@pytest.mark.parametrize("model, limit", [(SD40, 2000), (SD45, 2000), (LITE, 2000), (PRO, 4000)])
def test_each_model_has_its_own_prompt_limit(submit, model, limit):
    quality = catalog.MODELS[model].default_quality
    assert accepted_task(submit(model=model, quality=quality, prompt="a" * limit)).prompt == "a" * limit
    GenerationTask.objects.all().delete()
    assert_rejected(
        submit(model=model, quality=quality, prompt="a" * (limit + 1)),
        f"The prompt is {limit + 1:,} characters long; {NAMES[model]} takes at most {limit:,}. "
        "Shorten it by 1 character.",
    )


def test_pro_makes_one_image_per_task(submit):
    assert_rejected(submit(model=PRO, quality="1K", n="2"),
                    "Seedream 5.0 Pro makes one image per task: set the number of images to 1.")
    assert accepted_task(submit(model=PRO, quality="1K", n="1")).n == 1


@pytest.mark.parametrize("model, priority", [(SD45, "fast"), (LITE, "fast")])
def test_fast_priority_is_refused_where_the_model_has_only_standard(submit, model, priority):
    quality = catalog.MODELS[model].default_quality
    assert_rejected(submit(model=model, quality=quality, priority=priority),
                    f"{NAMES[model]} takes only the standard priority.")


EXTRAS = {  # field: (a value that asks for it, the models that take it, what the message calls it)
    "output_format": ("png", {LITE, PRO}, "output format"),
    "web_search": ("on", {LITE}, "web search"),
    "watermark": ("on", {PRO}, "watermark"),
    "background": ("opaque", {PRO}, "background"),
}


@pytest.mark.parametrize("model", list(NAMES))
@pytest.mark.parametrize("extra", list(EXTRAS))
def test_extras_are_accepted_only_by_the_models_that_take_them(submit, model, extra):
    value, takers, words = EXTRAS[extra]
    response = submit(model=model, quality=catalog.MODELS[model].default_quality, **{extra: value})
    if model in takers:
        task = accepted_task(response)
        assert getattr(task, extra) == (True if value == "on" else value)
    else:
        owners = " or ".join(NAMES[m] for m in NAMES if m in takers)
        assert_rejected(response, f"{NAMES[model]} has no {words} setting: it is for {owners} only.")


def test_a_transparent_background_needs_exactly_one_png_with_transparency(submit):
    ask = {"model": PRO, "quality": "1K", "background": "transparent"}
    assert_rejected(submit(**ask), "A transparent background needs exactly one PNG reference image with "
                                   "transparency (you added 0 reference images).")
    assert_rejected(submit(**ask, references=[upload(png((64, 64)))]),
                    "(the reference has no transparency)")
    assert_rejected(submit(**ask, references=[upload(transparent_png()), upload(transparent_png(), "b.png")]),
                    "(you added 2 reference images)")
    task = accepted_task(submit(**ask, references=[upload(transparent_png())]))
    assert task.background == "transparent"


def test_an_unknown_model_is_refused_and_a_missing_one_is_the_default(submit, settings):
    assert_rejected(submit(model="doubao-seedream-9"), "Choose one of the offered model values.")
    settings.DEFAULT_MODEL = SD45
    assert accepted_task(submit(model=None, quality="4K")).model == SD45


# Providers: the exact bodies, and the fakes' own per-model rules --------------------------------


def test_evolink_receives_each_models_id_and_parameters(evolink, team, alice, settings):
    settings.PRICE_OVERRIDES = {f"evolink:{PRO}": Decimal("0.05")}
    make_task(team, alice, model=SD45, quality="4K", size="21:9", n=2)
    make_task(team, alice, model=LITE, quality="3K", size="16:9", output_format="jpeg", web_search=True)
    make_task(team, alice, model=PRO, quality="1.5K", size="1:1", watermark=True,
              background="transparent", references=[checked(transparent_png())])
    for task in GenerationTask.objects.order_by("created_at"):
        task = run_until_final(task)
        assert task.status == Status.COMPLETED, task.error_message
    bodies = evolink.created
    assert bodies[0] == {"model": SD45, "prompt": "A lighthouse at dusk\n\nGenerate 2 different images.",
                         "prompt_priority": "standard", "n": 2, "size": "21:9", "quality": "4K"}
    assert bodies[1] == {"model": LITE, "prompt": "A lighthouse at dusk", "prompt_priority": "standard", "n": 1,
                         "size": "16:9", "quality": "3K",
                         "model_params": {"output_format": "jpeg", "tools": [{"type": "web_search"}]}}
    assert bodies[2] == {"model": PRO, "prompt": "A lighthouse at dusk", "prompt_priority": "standard",
                         "size": "1:1", "quality": "1.5K", "image_urls": bodies[2]["image_urls"],
                         "model_params": {"watermark": True, "background": "transparent"}}
    assert "n" not in bodies[2] and len(bodies[2]["image_urls"]) == 1
    sd45, lite, pro = GenerationTask.objects.order_by("created_at")
    assert [(i.width, i.height) for i in sd45.images.all()] == [(6240, 2656)] * 2
    assert [i.format for i in lite.images.all()] == ["JPEG"]
    assert [(i.width, i.height, i.format) for i in pro.images.all()] == [(1536, 1536, "PNG")]


def test_pro_never_sends_n_even_for_a_task_that_asked_for_more(evolink, team, alice, settings):
    settings.PRICE_OVERRIDES = {f"evolink:{PRO}": Decimal("0.05")}
    task = run_until_final(make_task(team, alice, model=PRO, quality="1K", n=4))
    assert task.n == 1 and task.status == Status.COMPLETED
    assert "n" not in evolink.created[0] and "Generate" not in evolink.created[0]["prompt"]


@pytest.mark.parametrize("body, param", [
    ({"model": SD45, "quality": "1K"}, "quality"),
    ({"model": PRO, "n": 2}, "n"),
    ({"model": SD40, "model_params": {"output_format": "png"}}, "model_params"),
    ({"model": LITE, "prompt_priority": "fast"}, "prompt_priority"),
    ({"model": PRO, "size": "3000x2000"}, "size"),
    ({"model": "doubao-seedream-3.0"}, "model"),
])
def test_the_fake_evolink_answers_400_invalid_request_error_to_a_body_the_model_refuses(evolink, body, param):
    import httpx

    request = {"model": SD40, "prompt": "a fox", "size": "1:1", "n": 1, **body}
    if body["model"] == PRO and "n" not in body:
        del request["n"]
    answer = httpx.post(f"{evolink.url}/v1/images/generations", json=request,
                        headers={"Authorization": f"Bearer {evolink.api_key}"})
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["error"]["param"] == param


def test_a_body_the_upstream_refuses_ends_the_task_with_a_clear_failure(evolink, team, alice):
    # A task whose settings slipped past the form (an older task retried after the table
    # changed): EvoLink's 400 ends it, with nothing billed.
    task = make_task(team, alice, model=SD45, quality="2K")
    task.update_fields(quality="1K")
    task = run_until_final(task)
    assert task.status == Status.FAILED and task.final_cost == 0
    assert "quality" in task.error_message


def test_byteplus_receives_each_models_id_and_parameters(byteplus, team, alice, settings):
    settings.PRICE_OVERRIDES = {f"byteplus:{model}": Decimal("0.04") for model in (SD45, LITE, PRO)}
    make_task(team, alice, model=SD45, quality="4K", size="auto")
    make_task(team, alice, model=LITE, quality="2K", size="1:1", output_format="png", web_search=True)
    make_task(team, alice, model=PRO, quality="1K", size="1:1", background="transparent",
              references=[checked(transparent_png())])
    for task in GenerationTask.objects.order_by("created_at"):
        assert run_until_final(task).status == Status.COMPLETED
    sd45, lite, pro = byteplus.created
    assert (sd45["model"], sd45["size"], sd45["watermark"]) == ("seedream-4-5-251128", "4K", False)
    assert "output_format" not in sd45 and "tools" not in sd45
    assert (lite["model"], lite["size"], lite["output_format"], lite["tools"]) == (
        "seedream-5-0-260128", "2048x2048", "png", [{"type": "web_search"}])
    assert (pro["model"], pro["size"], pro["background"], pro["sequential_image_generation"]) == (
        "seedream-5-0-pro-260628", "1024x1024", "transparent", "disabled")
    assert len(pro["image"]) == 1


def test_the_fake_byteplus_refuses_a_tier_the_model_lacks(byteplus):
    import httpx

    answer = httpx.post(f"{byteplus.url}/api/v3/images/generations",
                        json={"model": "seedream-4-5-251128", "prompt": "a fox", "size": "1K"},
                        headers={"Authorization": f"Bearer {byteplus.api_key}"})
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "BadRequest"


# Prices and the router --------------------------------------------------------------------------


@pytest.mark.parametrize("model, price", [(SD40, "0.0222"), (SD45, "0.035"), (LITE, "0.032")])
def test_a_task_is_priced_for_its_model(evolink, team, alice, model, price):
    task = run_until_final(make_task(team, alice, model=model, quality=catalog.MODELS[model].default_quality, n=2))
    assert (task.provider, task.price_per_image) == ("evolink", Decimal(price))
    assert task.reserved_cost == task.final_cost == Decimal(price) * 2


def test_pro_has_no_price_at_evolink_until_one_is_set(evolink, submit, settings):
    assert_rejected(submit(model=PRO, quality="1K"),
                    "No provider on this studio offers Seedream 5.0 Pro yet. Pick another model, or ask whoever "
                    "runs the studio to set a price for it.")
    settings.PRICE_OVERRIDES = {f"evolink:{PRO}": Decimal("0.05"), f"evolink:{PRO}:2K": Decimal("0.07")}
    assert accepted_task(submit(model=PRO, quality="1K")).price_per_image == Decimal("0.05")
    GenerationTask.objects.all().delete()
    assert accepted_task(submit(model=PRO, quality="2K")).price_per_image == Decimal("0.07")


def test_the_router_skips_a_provider_that_does_not_serve_the_model(evolink, byteplus, team, alice):
    assert offers.configured(SD40) == ["evolink", "byteplus"]
    assert offers.configured(SD45) == ["evolink"]  # BytePlus has no price for 4.5 here
    evolink.fault("create", 503, times=None)
    task = run_until_final(make_task(team, alice, model=SD45, quality="2K"))
    assert byteplus.created == []  # never sent to a provider without the model
    assert task.provider == "evolink"


def test_the_studio_shows_each_models_price_and_marks_one_nobody_offers(evolink, client_alice):
    html = client_alice.get("/").content.decode()
    assert "$0.0222 / image" in html and "$0.035 / image" in html and "$0.032 / image" in html
    pro = html[html.index(f'value="{PRO}"') - 200 : html.index(f'value="{PRO}"') + 300]
    assert "not offered here" in pro and "disabled" in pro


# Everywhere a task shows ------------------------------------------------------------------------


def test_remix_keeps_the_model_and_its_extras(client_alice, team, alice):
    task = make_task(team, alice, model=LITE, quality="3K", output_format="jpeg", web_search=True)
    html = client_alice.get(f"/?remix={task.pk}").content.decode()
    assert f'<input type="radio" name="model" value="{LITE}" checked' in html
    assert '<input type="radio" name="quality" value="3K" checked>' in html
    assert '<option value="jpeg" selected>' in html
    assert '<input type="checkbox" role="switch" name="web_search" checked>' in html


def test_the_model_shows_on_the_history_the_task_and_the_image_pages(client_alice, team, alice):
    task = run_until_final(make_task(team, alice, model=SD45, quality="2K", size="1:1"))
    image = task.images.get()
    assert 'class="model-chip" title="Seedream 4.5">Seedream 4.5<' in client_alice.get("/").content.decode()
    assert "<dt>Model</dt><dd>Seedream 4.5" in client_alice.get(f"/tasks/{task.pk}/").content.decode()
    assert "<dt>Model</dt><dd>Seedream 4.5" in client_alice.get(f"/gallery/{image.pk}/").content.decode()


def test_the_gallery_filters_by_model(client_alice, team, alice):
    run_until_final(make_task(team, alice, prompt="old model fox", model=SD40))
    run_until_final(make_task(team, alice, prompt="new model fox", model=LITE, quality="2K"))
    html = client_alice.get("/gallery/", {"model": LITE}).content.decode()
    assert "new model fox" in html and "old model fox" not in html
    assert client_alice.get("/gallery/", {"model": "nope"}).status_code == 400


def test_downloads_and_the_zip_manifest_name_the_model(client_alice, team, alice):
    task = run_until_final(make_task(team, alice, model=PRO, quality="1K", output_format="png"))
    image = task.images.get()
    data = b"".join(client_alice.get(f"/media/image/{image.pk}/download/").streaming_content)
    assert b'"model": "doubao-seedream-5.0-pro"' in data and b'"output_format": "png"' in data
    response = client_alice.post("/gallery/download/", {"ids": [image.pk]})
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        (described,) = json.loads(archive.read("manifest.json"))["images"]
    assert (described["model"], described["model_name"]) == (PRO, "Seedream 5.0 Pro")


def test_the_sandbox_renders_each_model_and_a_transparent_background(team, alice):
    task = run_until_final(make_task(team, alice, model=PRO, quality="1K", background="transparent",
                                     references=[checked(transparent_png())]))
    with task.images.get().file.open("rb") as f, Image.open(f) as im:
        assert im.mode == "RGBA" and im.size == (1024, 1024)
        assert im.getpixel((0, 0))[3] == 0 and im.getpixel((512, 512))[3] == 255
    opaque = run_until_final(make_task(team, alice, model=PRO, quality="1K"))
    with opaque.images.get().file.open("rb") as f, Image.open(f) as im:
        assert im.getpixel((0, 0))[3:] in ((), (255,))


# Compare ----------------------------------------------------------------------------------------


def test_a_comparison_makes_one_task_per_model_grouped_in_the_picked_order(client_alice, submit, team):
    response = submit(compare=[SD40, SD45, LITE], quality="2K", n="2")
    assert response.status_code == 302
    tasks = list(GenerationTask.objects.order_by("-created_at"))
    assert [t.model for t in tasks] == [SD40, SD45, LITE]
    assert len({t.compare_group for t in tasks}) == 1 and tasks[0].compare_group
    assert [t.price_per_image for t in tasks] == [Decimal(0)] * 3  # the sandbox
    html = client_alice.get("/").content.decode()
    group = html[html.index('class="compare-group"') : html.index("</section>", html.index('class="compare-group"'))]
    assert [name for name in NAMES.values() if f'<p class="task-prompt">{name}</p>' in group] == [
        "Seedream 4.0", "Seedream 4.5", "Seedream 5.0 Lite"]
    page = client_alice.get(f"/compare/{tasks[0].compare_group}/").content.decode()
    assert page.count('class="compare-column"') == 3 and "compare-columns columns-3" in page


def test_a_comparison_needs_two_to_four_models(submit):
    assert_rejected(submit(compare=[SD45], quality="2K"), "Pick 2 to 4 models to compare (you picked 1).")
    assert_rejected(submit(compare=[SD45, SD45], quality="2K"), "(you picked 1)")  # the same model twice
    response = submit(compare=list(NAMES), quality="2K")  # all four: 5.0 Pro makes one image
    assert response.status_code == 302 and GenerationTask.objects.count() == 4


def test_a_comparison_is_refused_with_the_name_of_each_model_that_cannot_take_it(submit):
    response = submit(compare=[SD40, PRO], quality="1K", prompt="a" * 3000)
    assert_rejected(response, "Seedream 4.0 takes at most 2,000")
    assert escape("Seedream 5.0 Pro") not in response.content.decode().split("takes at most")[0][-40:]
    assert_rejected(submit(compare=[SD40, SD45], quality="1K"), "Seedream 4.5 has no 1K quality")


def test_another_teams_comparison_is_not_found(team, alice, charlie, other_team, submit):
    from django.test import Client

    submit(compare=[SD40, SD45], quality="2K")
    group = GenerationTask.objects.first().compare_group
    outsider = Client()
    outsider.force_login(charlie, backend="gallery.auth.EmailOrUsernameBackend")
    assert outsider.get(f"/compare/{group}/").status_code == 404
    assert outsider.get("/compare/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_a_comparison_can_be_remixed_and_retried_per_model(team, alice):
    tasks = pipeline.submit_all(team, alice, {
        "compare": [SD45, PRO], "prompt": "a bowl [sandbox:fail=request_cancelled]", "ask_for_n": True,
        "size": "1:1", "quality": "2K", "custom_size": None, "n": 1, "priority": "standard", "references": [],
    })
    for task in tasks:
        task = run_until_final(task)
        assert task.status == Status.FAILED
        again = pipeline.retry(task, alice)
        assert (again.model, again.quality) == (task.model, "2K")

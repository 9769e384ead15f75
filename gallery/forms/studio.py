"""The submit form: every rule of SPEC §2, with messages a person understands.

The rules are plain functions raising ValidationError so the API can apply the same ones to
its JSON body; the form only wires them to fields.
"""

import re
import unicodedata
import uuid
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from gallery import catalog, offers, options
from gallery.ids import parse_id, parse_ids
from gallery.images.decode import (
    TOO_LARGE_TO_DECODE,
    ImageInfo,
    InvalidImage,
    clean_reference,
    fit_within,
    inspect_image,
)
from gallery.models import GalleryImage, GenerationTask, ReferenceImage
from gallery.options import say

SUBMIT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,32}")
CUSTOM_SIZE = re.compile(r"^\s*([0-9]{1,5})\s*[x×X*]\s*([0-9]{1,5})\s*$")


def clean_prompt(text, model=None):
    """Returns the prompt with newlines normalised and outer whitespace trimmed."""
    model = model or catalog.MODELS[options.DEFAULT_MODEL]
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValidationError(say("prompt_blank"), code="blank")
    if len(text) > model.max_prompt_chars:
        over = len(text) - model.max_prompt_chars
        raise ValidationError(
            say("prompt_too_long", length=f"{len(text):,}", model=model.name, limit=f"{model.max_prompt_chars:,}",
                over=f"{over:,}", characters="characters" if over > 1 else "character"),
            code="too_long",
        )
    for position, char in enumerate(text, start=1):
        if char not in "\n\t" and unicodedata.category(char) == "Cc":
            raise ValidationError(say("prompt_control", code=f"{ord(char):04X}", position=position),
                                  code="control_character")
    return text


@dataclass
class CheckedReference:
    name: str
    data: bytes
    info: ImageInfo


def too_big(name, size):
    """The message for a reference over 10 MB; just over, "10.0 MB" would read as allowed."""
    shown = filesizeformat(size)
    if shown == filesizeformat(options.MAX_REFERENCE_BYTES):
        shown = f"{size:,} bytes"
    limit = f"{options.MAX_REFERENCE_BYTES // 2**20} MB"
    return ValidationError(
        say("reference_too_big", name=name, size=shown, limit=limit, limit_bytes=f"{options.MAX_REFERENCE_BYTES:,}"),
        code="too_big",
    )


def check_reference(name, data):
    """Decodes one reference image and applies the upload rules; returns a CheckedReference."""
    if len(data) > options.MAX_REFERENCE_BYTES:
        raise too_big(name, len(data))
    try:
        info = inspect_image(data)
        if info.format in options.REFERENCE_FORMATS:
            # Upright and without the camera's metadata before anything reads its size: a
            # portrait photo stored sideways with an EXIF orientation is a portrait (SPEC §9).
            data, info = clean_reference(data, info)
    except InvalidImage as e:
        if str(e) == TOO_LARGE_TO_DECODE:  # only a side over 6,000 px is too large to decode
            message = f"“{name}”: {e} Each side must be at most {options.MAX_REFERENCE_SIDE:,} pixels."
        else:
            message = say("reference_unreadable", name=name)
        raise ValidationError(message, code="unreadable") from None
    if info.format not in options.REFERENCE_FORMATS:
        raise ValidationError(say("reference_format", name=name, format=info.format), code="format")
    w, h = info.width, info.height
    if not (options.MIN_REFERENCE_SIDE <= min(w, h) and max(w, h) <= options.MAX_REFERENCE_SIDE):
        raise ValidationError(
            say("reference_sides", name=name, width=w, height=h, min_side=f"{options.MIN_REFERENCE_SIDE:,}",
                max_side=f"{options.MAX_REFERENCE_SIDE:,}"),
            code="dimensions",
        )
    if not (options.MIN_REFERENCE_ASPECT <= w / h <= options.MAX_REFERENCE_ASPECT):
        raise ValidationError(say("reference_aspect", name=name, width=w, height=h), code="aspect")
    return CheckedReference(name=name, data=data, info=info)


def stored_reference(obj):
    """A stored reference or gallery image as a CheckedReference, shrunk to the upload limits
    if needed (a 4K result can be larger than a reference may be)."""
    with obj.file.open("rb") as f:
        data = f.read()
    data = fit_within(data, options.MAX_REFERENCE_SIDE, options.MAX_REFERENCE_BYTES)
    name = getattr(obj, "original_name", "") or obj.file.name.rsplit("/", 1)[-1]
    data, info = clean_reference(data, inspect_image(data))
    return CheckedReference(name=name, data=data, info=info)


def ordered(checked, order):
    """The references in the order the drop zone shows them (tokens f0, r12, g5, …); any
    not named keep their arrival order after those that are."""
    tokens = [t for t in order.split(",") if t in checked]
    tokens += [t for t in checked if t not in tokens]
    return [checked[t] for t in dict.fromkeys(tokens)]


def check_reference_count(count):
    if count > options.MAX_REFERENCES:
        over = count - options.MAX_REFERENCES
        raise ValidationError(
            say("too_many_references", count=count, limit=options.MAX_REFERENCES, over=over), code="too_many"
        )


def parse_custom_size(text, model=None):
    """'1920x1080' → (1920, 1080); blank → None. The pixel range is the model's."""
    model = model or catalog.MODELS[options.DEFAULT_MODEL]
    if not (text or "").strip():
        return None
    match = CUSTOM_SIZE.match(text)
    if not match:
        raise ValidationError(say("custom_format"), code="format")
    w, h = int(match[1]), int(match[2])
    if w == 0 or h == 0 or not (model.min_pixels <= w * h <= model.max_pixels):
        raise ValidationError(
            say("custom_pixels", width=w, height=h, pixels=f"{w * h:,}", model=model.name,
                min_pixels=f"{model.min_pixels:,}", max_pixels=f"{model.max_pixels:,}"),
            code="pixels",
        )
    if not (options.MIN_CUSTOM_ASPECT <= w / h <= options.MAX_CUSTOM_ASPECT):
        raise ValidationError(say("custom_aspect", width=w, height=h), code="aspect")
    return w, h


def check_counts(reference_count, n, model=None):
    model = model or catalog.MODELS[options.DEFAULT_MODEL]
    if n > model.max_images:
        raise ValidationError(say("one_image", model=model.name), code="one_image")
    total = reference_count + n
    if total > options.MAX_IMAGES:
        raise ValidationError(
            say("too_many_images", count=reference_count, s="" if reference_count == 1 else "s", n=n, total=total,
                max=options.MAX_IMAGES, left=options.MAX_IMAGES - reference_count),
            code="too_many_images",
        )


def _choices(values):
    return " or ".join(", ".join(values).rsplit(", ", 1)) if len(values) > 1 else values[0]


EXTRAS = {  # field → (what a person calls it, does the model take it)
    "output_format": ("output format", lambda m: bool(m.output_formats)),
    "web_search": ("web search", lambda m: m.web_search),
    "watermark": ("watermark", lambda m: m.watermark),
    "background": ("background", lambda m: bool(m.backgrounds)),
}


def check_model_settings(model, cleaned, references=()):
    """{field: message} for every setting `model` cannot take (the quality, the priority, the
    extras, a transparent background without one PNG reference with alpha). The studio form and
    the API both call this: the rules of each model are in gallery/catalog.py only."""
    problems = {}
    quality = cleaned.get("quality")
    if quality and not cleaned.get("custom_size") and not model.offers(quality):
        problems["quality"] = say("quality_not_offered", model=model.name, quality=quality,
                                  choices=_choices(model.qualities))
    if cleaned.get("priority") and cleaned["priority"] not in model.priorities:
        problems["priority"] = say("priority_not_offered", model=model.name, choices=_choices(model.priorities))
    for name, (what, takes) in EXTRAS.items():
        if cleaned.get(name) and not takes(model):
            owners = [m.name for m in catalog.MODELS.values() if takes(m)]
            problems[name] = say("extra_not_offered", model=model.name, extra=what, models=_choices(owners))
    if cleaned.get("output_format") and model.output_formats and cleaned["output_format"] not in model.output_formats:
        problems["output_format"] = f"{model.name} writes {_choices(model.output_formats)} files."
    if cleaned.get("background") == "transparent" and model.backgrounds:
        pngs = [ref for ref in references if ref.info.format == "PNG" and ref.info.has_alpha]
        if len(references) != 1 or len(pngs) != 1:
            found = f"you added {len(references)} reference image{'s' if len(references) != 1 else ''}"
            if len(references) == 1:
                found = "the reference has no transparency" if references[0].info.format == "PNG" else "the reference is not a PNG"
            problems["background"] = say("transparent_needs_png", found=found)
    return problems


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = MultipleFileInput

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = [f for f in (data or []) if f] if isinstance(data, (list, tuple)) else ([data] if data else [])
        return files


def model_choices():
    return [(model.id, model.name) for model in catalog.MODELS.values()]


class SubmitForm(forms.Form):
    model = forms.ChoiceField(label="Model", choices=model_choices, initial=lambda: settings.DEFAULT_MODEL,
                              required=False)  # not sent: the studio's default model
    # Compare: the same prompt and settings on two to four models at once, one task each.
    compare = forms.MultipleChoiceField(label="Compare models", choices=model_choices, required=False)
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "maxlength": options.MAX_PROMPT_CHARS, "placeholder": "A red fox reading a newspaper in a sunlit café, 35 mm photo"}),
        strip=False,
        required=False,  # clean_prompt gives the friendlier message
    )
    references = MultipleImageField(
        label="Reference images",
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )
    size = forms.ChoiceField(
        label="Aspect ratio", choices=[(r, "Auto" if r == "auto" else r) for r in options.RATIOS], initial="auto"
    )
    quality = forms.ChoiceField(choices=[(q, q) for q in options.QUALITIES], initial="2K")
    custom_size = forms.CharField(label="Custom pixel size", required=False, max_length=20)
    n = forms.IntegerField(
        label="Number of images", initial=1, min_value=1, max_value=options.MAX_IMAGES,
        error_messages=dict.fromkeys(["min_value", "max_value", "invalid", "required"], say("n_range", max=options.MAX_IMAGES)),
    )
    ask_for_n = forms.BooleanField(label="Ask the model for n different images", required=False, initial=True)
    priority = forms.ChoiceField(choices=options.PRIORITIES, initial="standard")
    output_format = forms.ChoiceField(
        label="File format", required=False, choices=[("", "The model's choice"), ("png", "PNG"), ("jpeg", "JPEG")]
    )
    web_search = forms.BooleanField(label="Let the model search the web (billed extra)", required=False)
    watermark = forms.BooleanField(label="Add the provider's watermark", required=False)
    background = forms.ChoiceField(
        label="Background", required=False,
        choices=[("", "As the prompt says"), ("opaque", "Opaque"), ("transparent", "Transparent")],
    )
    # Set when the form is rendered: a double submit of one form creates one task.
    submit_token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, team=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        for field, what in (("size", "aspect ratio"), ("quality", "quality"), ("priority", "priority"),
                            ("model", "model"), ("compare", "model"), ("output_format", "file format"),
                            ("background", "background")):
            self.fields[field].error_messages["invalid_choice"] = f"Choose one of the offered {what} values."

    def models(self):
        """The models this submission runs on: the compared ones, or the one picked."""
        compare = self.cleaned_data.get("compare") or []
        if compare:
            return [catalog.MODELS[model_id] for model_id in dict.fromkeys(compare)]
        model = catalog.MODELS.get(self.cleaned_data.get("model") or settings.DEFAULT_MODEL)
        return [model] if model else []

    def clean_model(self):
        return self.cleaned_data.get("model") or settings.DEFAULT_MODEL

    def clean_prompt(self):
        return self.cleaned_data.get("prompt")  # checked against each model's limit in clean()

    def clean_submit_token(self):
        """A hidden field nobody types: a malformed token only means no double-click guard."""
        token = self.cleaned_data.get("submit_token") or ""
        return token if SUBMIT_TOKEN.fullmatch(token) else ""

    def clean_references(self):
        files = self.cleaned_data.get("references") or []
        stored = self.stored_references()
        self.reference_count = len(files) + len(stored)  # for references + n, even if one fails
        check_reference_count(self.reference_count)
        checked, errors = dict(stored), []
        for position, upload in enumerate(files):
            name = upload.name or "image"
            if upload.size > options.MAX_REFERENCE_BYTES:  # reject before reading it
                errors.append(too_big(name, upload.size))
                continue
            try:
                checked[f"f{position}"] = check_reference(name, upload.read())
            except ValidationError as e:
                errors.append(e)
        if errors:
            raise ValidationError(errors)
        return ordered(checked, self.data.get("reference_order", ""))

    def stored_references(self):
        """[(token, CheckedReference)] for references reused without uploading them again:
        a task's references (remix, `keep_reference`) and gallery images (`use_image`)."""
        if self.team is None or not hasattr(self.data, "getlist"):
            return []
        found = []
        for kind, model, key in (("r", ReferenceImage, "keep_reference"), ("g", GalleryImage, "use_image")):
            ids = parse_ids(self.data.getlist(key)[: options.MAX_REFERENCES + 1])
            objects = model.objects.filter(team=self.team).in_bulk(ids or [])
            if ids is None or len(objects) < len(ids):
                raise ValidationError("One of the chosen images no longer exists. Remove it and try again.")
            for pk in ids:
                try:
                    found.append((f"{kind}{pk}", stored_reference(objects[pk])))
                except (InvalidImage, OSError):
                    raise ValidationError(
                        "One of the chosen images cannot be read from storage any more. Remove it and try again."
                    ) from None
        return found

    def clean_compare(self):
        compare = list(dict.fromkeys(self.cleaned_data.get("compare") or []))
        if compare and not 2 <= len(compare) <= 4:
            raise ValidationError(say("compare_count", count=len(compare)), code="compare_count")
        return compare

    def clean(self):
        """Every rule that depends on the model, for each model the submission runs on: the
        prompt's length, the custom size's range, n, the quality, the priority and the extras.
        Messages name the model, so a comparison says which one refuses what."""
        cleaned = super().clean()
        for model in self.models():
            self._check(model, cleaned)
        return cleaned

    def _check(self, model, cleaned):
        def refuse(field, check):
            try:
                return check()
            except ValidationError as e:
                if field not in self.errors or str(e.messages[0]) not in self.errors[field]:
                    self.add_error(field, e)

        if "prompt" in cleaned:
            prompt = refuse("prompt", lambda: clean_prompt(self.data.get("prompt"), model))
            if prompt is not None and "prompt" in cleaned:
                cleaned["prompt"] = prompt
        if "custom_size" in cleaned:
            size = refuse("custom_size", lambda: parse_custom_size(self.data.get("custom_size"), model))
            if "custom_size" in cleaned:
                cleaned["custom_size"] = size
        n, count = cleaned.get("n"), getattr(self, "reference_count", None)
        if n is not None and count is not None and count <= options.MAX_REFERENCES:
            refuse("n", lambda: check_counts(count, n, model))
        for field, message in check_model_settings(model, cleaned, cleaned.get("references") or ()).items():
            if field not in self.errors or message not in self.errors[field]:
                self.add_error(field, message)
        if offers.cheapest(model.id, cleaned.get("quality")) is None:
            self.add_error("compare" if cleaned.get("compare") else "model", say("model_unavailable", model=model.name))


def remix_initial(team, query):
    """Initial form values from `?remix=<task id>` (prompt, settings and references of a task;
    with `&compare=1`, of the comparison it belongs to)
    and `?use_image=<image id>` (a gallery image as a reference); unknown ids are ignored."""
    initial = {}
    task = GenerationTask.objects.for_team(team).filter(pk=_uuid(query.get("remix"))).first()
    if task:
        initial = {
            **task.chosen(),
            "custom_size": f"{task.custom_width}x{task.custom_height}" if task.custom_width else "",
            "keep_reference": list(task.references.values_list("pk", flat=True)),
        }
        if task.compare_group and query.get("compare"):  # the whole comparison, on the same models
            group = GenerationTask.objects.for_team(team).filter(compare_group=task.compare_group)
            initial["compare"] = list(group.order_by("-created_at", "-id").values_list("model", flat=True))
    ids = [pk for pk in map(parse_id, query.getlist("use_image")[: options.MAX_REFERENCES]) if pk]
    images = GalleryImage.objects.for_team(team).filter(pk__in=ids).values_list("pk", flat=True)
    if images:
        initial["use_image"] = list(images)
    return initial


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def stored_tiles(form):
    """The reused references a form carries, as drop zone tiles (for its first or a re-render)."""
    def ids(key):
        values = form.data.getlist(key) if form.is_bound else form.initial.get(key, [])
        return [pk for pk in map(parse_id, values[: options.MAX_REFERENCES + 1]) if pk]

    team = form.team
    tiles = []
    for ref in ReferenceImage.objects.filter(team=team, pk__in=ids("keep_reference")):
        tiles.append({"token": f"r{ref.pk}", "field": "keep_reference", "id": ref.pk, "name": ref.original_name,
                      "url": reverse("reference_file", args=[ref.pk]), "bytes": ref.bytes,
                      "width": ref.width, "height": ref.height})
    for image in GalleryImage.objects.filter(team=team, pk__in=ids("use_image")):
        tiles.append({"token": f"g{image.pk}", "field": "use_image", "id": image.pk,
                      "name": f"Image {image.index + 1} of a {image.created_at:%b %-d} task",
                      "url": reverse("image_thumbnail", args=[image.pk]), "bytes": image.bytes,
                      "width": image.width, "height": image.height})
    order = (form.data.get("reference_order", "") if form.is_bound else "").split(",")
    tiles.sort(key=lambda t: order.index(t["token"]) if t["token"] in order else len(order))
    return tiles

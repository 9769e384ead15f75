"""The submit form: every rule of SPEC §2, with messages a person understands.

The rules are plain functions raising ValidationError so the API can apply the same ones to
its JSON body; the form only wires them to fields.
"""

import re
import unicodedata
from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from gallery import options
from gallery.images import TOO_LARGE_TO_DECODE, ImageInfo, InvalidImage, inspect_image

CUSTOM_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x×X*]\s*(\d{1,5})\s*$")


def clean_prompt(text):
    """Returns the prompt with newlines normalised and outer whitespace trimmed."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValidationError("Write a prompt: describe the image you want.", code="blank")
    if len(text) > options.MAX_PROMPT_CHARS:
        over = len(text) - options.MAX_PROMPT_CHARS
        raise ValidationError(
            f"The prompt is {len(text):,} characters long; the limit is 2,000. "
            f"Shorten it by {over:,} character{'s' if over > 1 else ''}.",
            code="too_long",
        )
    for position, char in enumerate(text, start=1):
        if char not in "\n\t" and unicodedata.category(char) == "Cc":
            raise ValidationError(
                f"The prompt contains an invisible control character (U+{ord(char):04X}, "
                f"character {position}). Remove it and try again.",
                code="control_character",
            )
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
    return ValidationError(
        f"“{name}” is {shown}; reference images can be at most 10 MB "
        f"({options.MAX_REFERENCE_BYTES:,} bytes) each.",
        code="too_big",
    )


def check_reference(name, data):
    """Decodes one reference image and applies the upload rules; returns a CheckedReference."""
    if len(data) > options.MAX_REFERENCE_BYTES:
        raise too_big(name, len(data))
    try:
        info = inspect_image(data)
    except InvalidImage as e:
        # Only images with a side over 6,000 px are too large to decode (6,000² is under the cap).
        if str(e) == TOO_LARGE_TO_DECODE:
            advice = "Each side must be at most 6,000 pixels."
        else:
            advice = "Use a JPG, PNG or WEBP image."
        raise ValidationError(f"“{name}”: {e} {advice}", code="unreadable") from None
    if info.format not in options.REFERENCE_FORMATS:
        raise ValidationError(
            f"“{name}” is a {info.format} image; reference images must be JPG, PNG or WEBP.",
            code="format",
        )
    w, h = info.width, info.height
    if not (options.MIN_REFERENCE_SIDE <= min(w, h) and max(w, h) <= options.MAX_REFERENCE_SIDE):
        raise ValidationError(
            f"“{name}” is {w}×{h} pixels; each side must be between 14 and 6,000 pixels.",
            code="dimensions",
        )
    if not (1 / 3 <= w / h <= 3):
        raise ValidationError(
            f"“{name}” is {w}×{h} pixels, too narrow or too wide: width divided by height "
            f"must be between 1/3 and 3.",
            code="aspect",
        )
    return CheckedReference(name=name, data=data, info=info)


def check_reference_count(count):
    if count > options.MAX_REFERENCES:
        raise ValidationError(
            f"You added {count} reference images; the limit is 10. Remove {count - 10}.",
            code="too_many",
        )


def parse_custom_size(text):
    """'1920x1080' → (1920, 1080); blank → None."""
    if not (text or "").strip():
        return None
    match = CUSTOM_SIZE.match(text)
    if not match:
        raise ValidationError(
            "Write the custom size as WIDTHxHEIGHT, for example 1920x1080.", code="format"
        )
    w, h = int(match[1]), int(match[2])
    if w == 0 or h == 0 or not (options.MIN_CUSTOM_PIXELS <= w * h <= options.MAX_CUSTOM_PIXELS):
        raise ValidationError(
            f"{w}×{h} is {w * h:,} pixels; a custom size must have between 921,600 (1280×720) "
            f"and 16,777,216 (4096×4096) pixels.",
            code="pixels",
        )
    if not (1 / 16 <= w / h <= 16):
        raise ValidationError(
            f"{w}×{h} is too narrow or too wide: width divided by height must be between 1/16 and 16.",
            code="aspect",
        )
    return w, h


def check_counts(reference_count, n):
    total = reference_count + n
    if total > options.MAX_IMAGES:
        s = "" if reference_count == 1 else "s"
        raise ValidationError(
            f"{reference_count} reference image{s} + {n} images = {total}, but together they can be "
            f"at most 15. With {reference_count} reference{s}, ask for at most "
            f"{options.MAX_IMAGES - reference_count} images.",
            code="too_many_images",
        )


def sent_prompt(prompt, n, ask_for_n):
    """The prompt as sent upstream: n is an upper bound, so we ask for n images in words."""
    if ask_for_n and n > 1:
        return f"{prompt}\n\nGenerate {n} different images."
    return prompt


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


class SubmitForm(forms.Form):
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
    custom_size = forms.CharField(
        label="Custom pixel size", required=False, max_length=20,
        widget=forms.TextInput(attrs={"placeholder": "e.g. 1920x1080"}),
        help_text="Replaces ratio and quality.",
    )
    n = forms.IntegerField(
        label="Number of images", initial=1, min_value=1, max_value=options.MAX_IMAGES,
        error_messages={
            "min_value": "Choose between 1 and 15 images.",
            "max_value": "Choose between 1 and 15 images.",
            "invalid": "Choose between 1 and 15 images.",
            "required": "Choose between 1 and 15 images.",
        },
    )
    ask_for_n = forms.BooleanField(
        label="Ask the model for n different images", required=False, initial=True,
        help_text="Adds “Generate n different images.” to the prompt we send when n > 1.",
    )
    priority = forms.ChoiceField(choices=options.PRIORITIES, initial="standard")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field, what in (("size", "aspect ratio"), ("quality", "quality"), ("priority", "priority")):
            self.fields[field].error_messages["invalid_choice"] = f"Choose one of the offered {what} values."

    def clean_prompt(self):
        return clean_prompt(self.cleaned_data.get("prompt"))

    def clean_references(self):
        files = self.cleaned_data.get("references") or []
        self.reference_count = len(files)  # for the references + n rule, even if one is rejected
        check_reference_count(len(files))
        checked, errors = [], []
        for upload in files:
            name = upload.name or "image"
            if upload.size > options.MAX_REFERENCE_BYTES:  # reject before reading it
                errors.append(too_big(name, upload.size))
                continue
            try:
                checked.append(check_reference(name, upload.read()))
            except ValidationError as e:
                errors.append(e)
        if errors:
            raise ValidationError(errors)
        return checked

    def clean_custom_size(self):
        return parse_custom_size(self.cleaned_data.get("custom_size"))

    def clean(self):
        cleaned = super().clean()
        n, count = cleaned.get("n"), getattr(self, "reference_count", None)
        if n is not None and count is not None and count <= options.MAX_REFERENCES:
            try:
                check_counts(count, n)
            except ValidationError as e:
                self.add_error("n", e)
        return cleaned

"""The gallery's query string (search, filters, page token) and its selections of images."""

from datetime import date
from urllib.parse import urlencode

from django import forms

from gallery import catalog, options
from gallery.ids import parse_ids
from gallery.models.images import decode_cursor

RATIO_CHOICES = (
    [("", "Any ratio"), ("auto", "Auto")]
    + [(r, r) for r in options.RATIOS if r != "auto"]
    + [("custom", "Custom size")]
)


def quality_choices():
    """Only the tiers some model of the catalog offers, smallest first: no tier nothing can have."""
    offered = [q for q in catalog.QUALITIES if any(model.offers(q) for model in catalog.MODELS.values())]
    return [("", "Any quality")] + [(q, q) for q in offered]


MODEL_CHOICES = [("", "Any model")] + [(model.id, model.name) for model in catalog.MODELS.values()]
FILTERS = ("q", "member", "model", "ratio", "quality", "since", "until", "favourites")
# Dates outside these years cannot be turned into a moment in every time zone (year 1 in Tokyo
# is before year 1 in UTC), and no image was made then.
EARLIEST, LATEST = date(2000, 1, 1), date(9998, 12, 31)
MAX_SELECTION = 500  # well under DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000)


class GalleryFilters(forms.Form):
    """Every filter lives in the URL, so a filtered view can be bookmarked and shared."""

    q = forms.CharField(label="Search prompts", required=False, max_length=200)
    member = forms.TypedChoiceField(label="Member", required=False, coerce=int, empty_value=None)
    model = forms.ChoiceField(label="Model", required=False, choices=MODEL_CHOICES)
    ratio = forms.ChoiceField(label="Ratio", required=False, choices=RATIO_CHOICES)
    quality = forms.ChoiceField(label="Quality", required=False, choices=quality_choices)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    favourites = forms.BooleanField(label="Favourites", required=False)
    cursor = forms.CharField(required=False, max_length=60)

    def __init__(self, data, team):
        super().__init__(data)
        members = team.memberships.select_related("user").order_by("user__first_name", "user__username")
        self.fields["member"].choices = [("", "Everyone")] + [
            (m.user_id, m.user.display_name) for m in members
        ]
        self.fields["q"].widget.input_type = "search"
        self.fields["q"].widget.attrs.update(placeholder="Search prompts…", autocomplete="off")

    def clean_cursor(self):
        token = self.cleaned_data["cursor"]
        if not token:
            return None
        try:
            return decode_cursor(token)
        except ValueError:
            raise forms.ValidationError(
                "This link to a further page is broken: start again from the top."
            ) from None

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        for name, day in (("since", since), ("until", until)):
            if day and not EARLIEST <= day <= LATEST:
                self.add_error(name, f"Pick a date between {EARLIEST:%Y} and {LATEST:%Y}.")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def apply(self, images):
        """The images that pass every filter (call after is_valid())."""
        data = self.cleaned_data
        if data["q"]:
            images = images.matching(data["q"])
        if data["member"]:
            images = images.by_member(data["member"])
        if data["model"]:
            images = images.with_model(data["model"])
        if data["ratio"]:
            images = images.with_ratio(data["ratio"])
        if data["quality"]:
            images = images.with_quality(data["quality"])
        if data["favourites"]:
            images = images.favourites()
        return images.created_between(data["since"], data["until"])

    @property
    def active(self):
        return self.is_bound and any(self.data.get(name) for name in FILTERS)

    def query(self, **extra):
        """The filters as a query string (empty ones left out), plus `extra` (e.g. a cursor)."""
        pairs = [(name, self.data.get(name)) for name in FILTERS if self.data.get(name)]
        return urlencode(pairs + [(k, v) for k, v in extra.items() if v])


class IdList(forms.Field):
    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": "Select at least one image first.",
        "invalid": "That selection is not valid: reload the gallery and select the images again.",
        "too_many": f"Select at most {MAX_SELECTION:,} images at a time.",
    }

    def to_python(self, value):
        values = [v for v in (value or []) if v != ""]
        if len(values) > MAX_SELECTION:
            raise forms.ValidationError(self.error_messages["too_many"], code="too_many")
        ids = parse_ids(values)
        if ids is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return ids


class SelectionForm(forms.Form):
    """Images picked in the gallery for a ZIP or for deletion."""

    ids = IdList()

    def problem(self):
        """Context for the error page of an invalid selection."""
        return {"title": "Nothing to do", "message": " ".join(self.errors.get("ids", []))}

    def selected(self, images):
        """The chosen images among `images` (a team's), newest first; None if any id is not there,
        so another team's image in a selection makes the whole request a 404."""
        wanted = self.cleaned_data["ids"]
        found = list(images.filter(pk__in=wanted).newest_first())
        return found if len(found) == len(wanted) else None

from decimal import Decimal

from django import forms

from gallery.models import Team
from gallery.models.teams import time_zones

MAX_BUDGET = Decimal("1000000")
# Offered first, west to east, before the whole zone database: where most teams are.
COMMON_ZONES = (
    "America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York", "America/Sao_Paulo",
    "Europe/London", "Europe/Paris", "Europe/Berlin", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore",
    "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney",
)


def zone_label(zone):
    return zone.replace("_", " ")


def zone_choices(current=None):
    """Grouped choices: UTC, the team's current zone and the common ones first, then every zone
    (the common ones again, in their alphabetical place). Any zone of the database is valid."""
    known = time_zones()
    common = [zone for zone in ("UTC", current, *COMMON_ZONES) if zone and zone in known]
    common = list(dict.fromkeys(common))  # the current zone once, where it first comes
    return [
        ("Common time zones", [(zone, zone_label(zone)) for zone in common]),
        ("All time zones", [(zone, zone_label(zone)) for zone in sorted(known)]),
    ]


class BudgetForm(forms.ModelForm):
    """An owner's budget settings: the team's monthly budget, what each member may spend a month,
    and the time zone months are counted in. Empty budget fields mean no cap."""

    monthly_budget = forms.DecimalField(
        label="Monthly budget for the team ($)", required=False, min_value=0, max_value=MAX_BUDGET,
        decimal_places=2, help_text="Empty: no budget. Submissions that would pass it are refused.",
    )
    member_monthly_cap = forms.DecimalField(
        label="What each member may spend a month ($)", required=False, min_value=0, max_value=MAX_BUDGET,
        decimal_places=2, help_text="Empty: no cap per member.",
    )
    time_zone = forms.ChoiceField(label="Months are counted in the time zone", choices=())

    class Meta:
        model = Team
        fields = ["monthly_budget", "member_monthly_cap", "time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = zone_choices(self.instance.time_zone if self.instance.pk else None)
        self.fields["time_zone"].error_messages["invalid_choice"] = (
            "“%(value)s” is not a time zone. Pick one from the list, such as Europe/Berlin."
        )

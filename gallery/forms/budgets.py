from decimal import Decimal

from django import forms

from gallery.models import Team
from gallery.models.teams import time_zones

MAX_BUDGET = Decimal("1000000")


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
        self.fields["time_zone"].choices = [(zone, zone.replace("_", " ")) for zone in sorted(time_zones())]
        self.fields["time_zone"].error_messages["invalid_choice"] = (
            "“%(value)s” is not a time zone. Pick one from the list, such as Europe/Berlin."
        )

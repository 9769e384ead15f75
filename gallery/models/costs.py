from django.conf import settings
from django.db import models
from django.db.models import Q

from .tasks import GenerationTask
from .teams import Team


class Charge(models.Model):
    """What one task costs the team: the ledger that budgets and the usage page read. It outlives
    the task (a deleted task's spend still counts), and a change of prices never rewrites it.
    Reserved at submit (n × price), re-priced when a task fails over to another provider, and
    settled to images produced × price when the task ends."""

    task = models.OneToOneField(GenerationTask, models.SET_NULL, null=True, blank=True, related_name="charge")
    # Kept when the team is deleted too (then without a team): money spent at a provider stays spent.
    team = models.ForeignKey(Team, models.SET_NULL, null=True, related_name="charges")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="charges")
    created_at = models.DateTimeField(help_text="When the task was submitted: the month it counts in.")
    model = models.CharField(max_length=40)
    quality = models.CharField(max_length=4)
    provider = models.CharField(max_length=20)
    n = models.PositiveSmallIntegerField()
    price_per_image = models.DecimalField(max_digits=10, decimal_places=4)
    reserved_cost = models.DecimalField(max_digits=10, decimal_places=4)
    # Set when the task has ended and its images are counted.
    final_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    images = models.PositiveSmallIntegerField(default=0)
    failed = models.BooleanField(default=False)
    seconds = models.FloatField(null=True, blank=True, help_text="Submit to end, for finished tasks.")

    class Meta:
        indexes = [
            models.Index(fields=["team", "created_at"], name="charge_team_month"),
            models.Index(fields=["team", "user", "created_at"], name="charge_member_month"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(reserved_cost__gte=0), name="charge_reserved_not_negative"),
        ]

    def __str__(self):
        return f"{self.cost} for {self.n} × {self.model}"

    @property
    def cost(self):
        """What counts against the budget: the final cost once settled, the reservation before."""
        return self.reserved_cost if self.final_cost is None else self.final_cost

    @property
    def settled(self):
        return self.final_cost is not None


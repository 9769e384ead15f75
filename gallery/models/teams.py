import functools
import hashlib
import secrets
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone


class User(AbstractUser):
    email = models.EmailField("e-mail address", unique=True)
    # The team a new session opens in: the one this person switched to last.
    last_team = models.ForeignKey("Team", models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.get_full_name() or self.username

    @property
    def display_name(self):
        return self.get_full_name() or self.username


class Instance(models.Model):
    """One row, written by the onboarding page: its primary key makes "the first team and owner"
    happen once, even when two first visits arrive at the same moment (on PostgreSQL a
    select_for_update() on the empty user table would lock nothing)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    set_up_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Set up {self.set_up_at:%Y-%m-%d %H:%M}"


@functools.cache
def time_zones():
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(name):
    from django.core.exceptions import ValidationError

    if name not in time_zones():
        raise ValidationError(f"“{name}” is not a time zone. Pick one such as Europe/Berlin or America/New_York.")


class Team(models.Model):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    # Budgets (gallery/budgets.py), in dollars per calendar month in the team's time zone; None: no cap.
    monthly_budget = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    member_monthly_cap = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="What each member may spend a month."
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])

    def __str__(self):
        return self.name

    @classmethod
    def create_with_owner(cls, name, owner):
        with transaction.atomic():
            team = cls.objects.create(name=name)
            Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        return team


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class LastOwnerError(Exception):
    """Raised when a change would leave a team without an owner."""


class MembershipQuerySet(models.QuerySet):
    def owners(self):
        return self.filter(role=Role.OWNER)


class Membership(models.Model):
    team = models.ForeignKey(Team, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint("team", "user", name="membership_unique")]
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_manage(self):
        return self.role in (Role.OWNER, Role.ADMIN)

    def can_change(self, other):
        """Owners manage everyone; admins manage admins and members but never owners."""
        if self.role == Role.OWNER:
            return True
        return self.role == Role.ADMIN and other.role != Role.OWNER

    def assignable_roles(self):
        if self.role == Role.OWNER:
            return list(Role)
        if self.role == Role.ADMIN:
            return [Role.ADMIN, Role.MEMBER]
        return []

    def _locked(self):
        """This membership re-read under a lock on its team's row. Every change of roles takes
        that one lock, so two owners demoting each other at once run one after the other and
        the second sees the first's change (locking the two membership rows alone would not:
        each transaction would lock only the row it changes)."""
        Team.objects.select_for_update().filter(pk=self.team_id).exists()
        return Membership.objects.filter(pk=self.pk).first()

    def _is_last_owner(self):
        return self.role == Role.OWNER and not (
            Membership.objects.owners().filter(team_id=self.team_id).exclude(pk=self.pk).exists()
        )

    def change_role(self, role):
        with transaction.atomic():
            locked = self._locked()
            if locked is None:
                raise LastOwnerError("This person is no longer in the team.")
            if role != Role.OWNER and locked._is_last_owner():
                raise LastOwnerError("A team needs at least one owner: make someone else owner first.")
            locked.role = role
            locked.save(update_fields=["role"])
        self.role = role

    def remove(self):
        with transaction.atomic():
            locked = self._locked()
            if locked is None:
                return  # already gone
            if locked._is_last_owner():
                raise LastOwnerError(
                    "You are the last owner of this team, so you cannot leave it: first transfer "
                    "ownership to another member (make them an owner here), or delete the team."
                )
            locked.delete()


def _hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


class InviteQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())

    def by_token(self, token):
        return self.filter(token_hash=_hash_token(token or ""))


class InviteError(Exception):
    status = 410  # the link was good once


class InviteForSomeoneElse(InviteError):
    status = 403


class Invite(models.Model):
    """A single-use link that lets one person join a team. Only the token's hash is stored."""

    team = models.ForeignKey(Team, models.CASCADE, related_name="invites")
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Invite to {self.team} ({self.role})"

    @classmethod
    def create(cls, team, created_by, role=Role.MEMBER, email=""):
        """Returns (invite, token); the token is shown once and never stored."""
        token = secrets.token_urlsafe(32)
        invite = cls.objects.create(
            team=team,
            created_by=created_by,
            role=role,
            email=email,
            token_hash=_hash_token(token),
            expires_at=timezone.now() + timedelta(days=settings.INVITE_DAYS),
        )
        return invite, token

    def problem(self):
        """Why this invite cannot be used, in words for the person holding the link, or ''."""
        if self.revoked_at:
            return "This invite link was withdrawn. Ask the team for a new one."
        if self.accepted_at:
            return "This invite link has already been used. Ask the team for a new one."
        if self.expires_at <= timezone.now():
            return f"This invite link has expired (links last {settings.INVITE_DAYS} days). Ask the team for a new one."
        return ""

    def is_for(self, email):
        """An invite made for an address may only be accepted with that address (SPEC §1); one
        made without an address is for whoever holds the link."""
        return not self.email or self.email.casefold() == (email or "").casefold()

    def accept(self, user):
        """Adds the user to the team; single use, even under concurrent clicks."""
        if not self.is_for(user.email):
            raise InviteForSomeoneElse(
                f"This invite is for {self.email}, but you are signed in as {user.email}. Sign out and "
                f"open the link again to join with {self.email}, or ask the team for an invite to your address."
            )
        with transaction.atomic():
            used = Invite.objects.pending().filter(pk=self.pk).update(
                accepted_at=timezone.now(), accepted_by=user
            )
            if not used:
                self.refresh_from_db()
                raise InviteError(self.problem() or "This invite link can no longer be used.")
            membership, created = Membership.objects.get_or_create(
                team=self.team, user=user, defaults={"role": self.role}
            )
        return membership

import logging
import smtplib

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.mail import BadHeaderError, send_mail
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from gallery import pipeline
from gallery.access import get_for_team, manager_required, team_required
from gallery.forms.accounts import AccountForm, EmailTaken, InviteForm, RoleForm, TeamForm
from gallery.ids import parse_id
from gallery.middleware import TEAM_SESSION_KEY, switch_team
from gallery.models import Invite, InviteError, LastOwnerError, Membership, Role, Team
from gallery.views.accounts import BACKEND, form_data, render_form

log = logging.getLogger(__name__)


class DeleteTeamForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=200)

    def __init__(self, *args, team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_name(self):
        typed = " ".join(self.cleaned_data["name"].split())
        if typed != " ".join(self.team.name.split()):
            raise forms.ValidationError(
                f"That is not this team's name. Type “{self.team.name}” exactly as it is written "
                "to delete it."
            )
        return typed


@team_required
def members(request, invite_form=None, delete_form=None, problem="", status=200):
    """The team page; a refused change comes back here with its reason and a 4xx status."""
    people = request.team.memberships.select_related("user").order_by("created_at")
    is_owner = request.membership.role == Role.OWNER
    ctx = {
        "members": people,
        "invites": request.team.invites.pending().select_related("created_by"),
        "invite_form": invite_form or InviteForm(membership=request.membership),
        "delete_form": delete_form or DeleteTeamForm(team=request.team),
        "sole_owner": is_owner and not any(m.role == Role.OWNER and m != request.membership for m in people),
        # What deleting the team would take with it, said before the owner acts.
        "task_count": request.team.tasks.count() if is_owner else None,
        "image_count": request.team.images.count() if is_owner else None,
        "new_invite_link": request.session.pop("new_invite_link", None),
        "invite_days": settings.INVITE_DAYS,
        "problem": problem,
    }
    return render(request, "teams/members.html", ctx, status=status)


@manager_required
@require_POST
def invite(request):
    form = InviteForm(request.POST, membership=request.membership)
    if not form.is_valid():
        return members(request, invite_form=form, status=400)
    new_invite, token = Invite.create(
        request.team, request.user, role=form.cleaned_data["role"], email=form.cleaned_data["email"]
    )
    link = request.build_absolute_uri(reverse("invite_accept", args=[token]))
    # Shown once on the next page; only the token's hash is kept.
    request.session["new_invite_link"] = link
    if new_invite.email and not _send_invite(request, new_invite, link):
        messages.warning(
            request,
            f"The invite link was created, but the e-mail to {new_invite.email} could not be sent. "
            "Copy the link below and send it yourself.",
        )
    else:
        messages.success(request, "Invite link created. Copy it now: it is shown only once.")
    return redirect("team_members")


def _send_invite(request, new_invite, link):
    subject = f"{request.user.display_name} invited you to {request.team.name} on Seedream Studio"
    body = (
        f"Join the team here (the link works once and expires in {settings.INVITE_DAYS} days):"
        f"\n\n{link}\n"
    )
    try:
        # Names are one line, but rows from before that rule may not be: a subject never breaks.
        send_mail(" ".join(subject.split()), body, None, [new_invite.email])
    except (BadHeaderError, OSError, smtplib.SMTPException):
        log.exception("Invite %s: e-mail to %s not sent", new_invite.pk, new_invite.email)
        return False
    return True


@manager_required
@require_POST
def revoke_invite(request, invite_id):
    pending = get_for_team(request, Invite.objects.pending(), pk=invite_id)
    pending.revoked_at = timezone.now()
    pending.save(update_fields=["revoked_at"])
    messages.success(request, "Invite withdrawn: its link no longer works.")
    return redirect("team_members")


@manager_required
@require_POST
def change_role(request, membership_id):
    target = get_for_team(request, Membership, pk=membership_id)
    form = RoleForm(request.POST, membership=request.membership)
    if not request.membership.can_change(target):
        return members(request, problem="Only an owner can change an owner's role.", status=403)
    if not form.is_valid():
        return members(request, problem=form.errors["role"][0], status=400)
    try:
        target.change_role(form.cleaned_data["role"])
    except LastOwnerError as e:
        return members(request, problem=str(e), status=409)
    messages.success(request, f"{target.user.display_name} is now {target.get_role_display().lower()}.")
    return redirect("team_members")


@manager_required
@require_POST
def remove_member(request, membership_id):
    target = get_for_team(request, Membership, pk=membership_id)
    if target == request.membership:
        return leave(request)
    if not request.membership.can_change(target):
        return members(request, problem="Only an owner can remove an owner.", status=403)
    try:
        target.remove()
        messages.success(request, f"{target.user.display_name} was removed from {request.team.name}.")
    except LastOwnerError as e:
        return members(request, problem=str(e), status=409)
    return redirect("team_members")


@team_required
@require_POST
def leave(request):
    team = request.team
    try:
        request.membership.remove()
    except LastOwnerError as e:
        return members(request, problem=str(e), status=409)
    messages.success(request, f"You left {team.name}.")
    return redirect("studio")


@team_required
@require_POST
def delete(request):
    """An owner deletes the team, having typed its name; the spend stays in the ledger."""
    if request.membership.role != Role.OWNER:
        raise PermissionDenied("Only the team's owners can delete it.")
    team = request.team
    form = DeleteTeamForm(request.POST, team=team)
    if not form.is_valid():
        return members(request, delete_form=form, problem=form.errors["name"][0], status=400)
    try:
        pipeline.delete_team(team)
    except pipeline.TeamBusy as e:
        busy = e.args[0]
        problem = (
            f"{busy} of the team's tasks {'is' if busy == 1 else 'are'} still running or being wrapped up. "
            "Cancel them in the Studio or wait for them to finish, then delete the team."
        )
        return members(request, delete_form=form, problem=problem, status=409)
    gone = f"{team.name} was deleted, with its images and files."
    following = request.user.memberships.select_related("team").order_by("created_at").first()
    if following is None:
        request.session.pop(TEAM_SESSION_KEY, None)
        messages.success(request, f"{gone} Create a new team, or ask for an invite link to join one.")
        return redirect("team_create")
    switch_team(request, following.team)
    messages.success(request, f"{gone} You are now in {following.team.name}.")
    return redirect("studio")


@login_required
@require_http_methods(["GET", "POST"])
def create(request):
    form = TeamForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        team = Team.create_with_owner(form.cleaned_data["name"], request.user)
        switch_team(request, team)
        messages.success(request, f"{team.name} is ready. Invite your teammates from the Team page.")
        return redirect("studio")
    return render_form(request, "teams/create.html", {"form": form})


@login_required
@require_POST
def switch(request):
    team_id = parse_id(request.POST.get("team"))
    if team_id is None:
        raise Http404("No such team.")  # a forged id is a 404, never a 500
    membership = get_object_or_404(request.user.memberships, team_id=team_id)
    switch_team(request, membership.team)
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}) or "/tasks/" in next_url:
        next_url = reverse("studio")
    return redirect(next_url)


@require_http_methods(["GET", "POST"])
def accept_invite(request, token):
    """An invite link: join as the signed-in person, or create an account and join."""
    found = Invite.objects.by_token(token).select_related("team").first()
    problem = found.problem() if found else "This invite link is not valid. Check that you copied all of it."
    if problem:
        return render(request, "teams/invite_problem.html", {"problem": problem}, status=410 if found else 404)
    if request.user.is_authenticated:
        if found.team.memberships.filter(user=request.user).exists():
            switch_team(request, found.team)
            messages.info(request, f"You are already in {found.team.name}.")
            return redirect("studio")
        if not found.is_for(request.user.email):
            return _join(request, found, request.user)  # refused, with the reason
        if request.method == "POST":
            return _join(request, found, request.user)
        return render(request, "teams/invite_accept.html", {"invite": found})
    form = AccountForm(form_data(request), fixed_email=found.email)
    if request.method == "POST" and form.is_valid():
        try:
            return _join(request, found, form.create_user)
        except EmailTaken:
            pass
    return render_form(request, "teams/invite_signup.html", {"invite": found, "form": form})


def _join(request, found, user_or_factory):
    """Accepts the invite; a new account is created in the same transaction, or not at all."""
    try:
        with transaction.atomic():
            user = user_or_factory() if callable(user_or_factory) else user_or_factory
            found.accept(user)
    except InviteError as e:
        return render(request, "teams/invite_problem.html", {"problem": str(e)}, status=e.status)
    if not request.user.is_authenticated:
        auth_login(request, user, backend=BACKEND)
    switch_team(request, found.team)
    messages.success(request, f"Welcome to {found.team.name}!")
    return redirect("studio")

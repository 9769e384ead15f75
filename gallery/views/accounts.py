from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from gallery import ratelimit
from gallery.forms.accounts import AccountForm, EmailTaken, LoginForm, OnboardingForm
from gallery.models import Instance, Team

BACKEND = "gallery.auth.EmailOrUsernameBackend"


def form_data(request):
    """The form data of a POST, even an empty one (`request.POST or None` would show a blank form)."""
    return request.POST if request.method == "POST" else None


def render_form(request, template, ctx):
    """A page with a form: a rejected submission comes back with its errors and a 400."""
    form = ctx["form"]
    return render(request, template, ctx, status=400 if form.is_bound and form.errors else 200)


class RejectedIs400:
    """For Django's own form views: a rejected form is bad input, answered with a 400."""

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


@require_http_methods(["GET", "POST"])
def welcome(request):
    """First run: creates the first team and its owner (who also runs the instance)."""
    if get_user_model().objects.exists():
        return redirect("studio")
    form = OnboardingForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                # Two first visitors: the second one's insert of the single Instance row fails.
                Instance.objects.create()
                user = form.create_user(is_staff=True, is_superuser=True)
                team = Team.create_with_owner(form.cleaned_data["team_name"], user)
        except IntegrityError:
            messages.info(request, "This studio was set up a moment ago. Sign in, or ask its owner for an invite.")
            return redirect("login")
        except EmailTaken:
            return render_form(request, "registration/welcome.html", {"form": form})
        auth_login(request, user, backend=BACKEND)
        messages.success(request, f"Welcome to Seedream Studio! {team.name} is ready.")
        return redirect("studio")
    return render_form(request, "registration/welcome.html", {"form": form})


@require_http_methods(["GET", "POST"])
def signup(request):
    """Open sign-up, only when the instance enables it (ALLOW_SIGNUP)."""
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is by invitation on this instance.")
    form = AccountForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            user = form.create_user()
        except EmailTaken:
            return render_form(request, "registration/signup.html", {"form": form})
        auth_login(request, user, backend=BACKEND)
        return redirect("team_create")
    return render_form(request, "registration/signup.html", {"form": form})


class LoginView(RejectedIs400, auth_views.LoginView):
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        # Open sign-up is found from the sign-in page, where a newcomer lands.
        return {**super().get_context_data(**kwargs), "allow_signup": settings.ALLOW_SIGNUP}


class PasswordChangeView(RejectedIs400, auth_views.PasswordChangeView):
    success_url = "/password/change/done/"


class PasswordResetConfirmView(RejectedIs400, auth_views.PasswordResetConfirmView):
    success_url = "/password/reset/complete/"


login = LoginView.as_view()
password_change = PasswordChangeView.as_view()
password_reset_confirm = PasswordResetConfirmView.as_view()
class PasswordResetView(RejectedIs400, auth_views.PasswordResetView):
    """Throttled per IP (a visible refusal) and per address (silently: the page must not tell
    whether an address has an account), so a script cannot flood someone's inbox."""

    success_url = "/password/reset/sent/"

    def form_valid(self, form):
        allowed, wait = ratelimit.hit(f"reset-ip:{ratelimit.client_ip(self.request)}", *settings.PASSWORD_RESET_IP_LIMIT)
        if not allowed:
            minutes = max(1, round(wait / 60))
            form.add_error(
                None,
                f"Too many password reset requests came from your network. Try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        email = form.cleaned_data["email"].strip().casefold()
        if not ratelimit.hit(f"reset-email:{email}", *settings.PASSWORD_RESET_EMAIL_LIMIT)[0]:
            return redirect(self.get_success_url())
        return super().form_valid(form)


password_reset = PasswordResetView.as_view()

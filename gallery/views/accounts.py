from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from gallery.account_forms import AccountForm, LoginForm, OnboardingForm
from gallery.models import Team

BACKEND = "gallery.auth.EmailOrUsernameBackend"


def form_data(request):
    """The form data of a POST, even an empty one (`request.POST or None` would show a blank form)."""
    return request.POST if request.method == "POST" else None


@require_http_methods(["GET", "POST"])
def welcome(request):
    """First run: creates the first team and its owner (who also runs the instance)."""
    if get_user_model().objects.exists():
        return redirect("studio")
    form = OnboardingForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            # Checked again inside the transaction: two first visitors must not both win.
            if get_user_model().objects.select_for_update().exists():
                return redirect("login")
            user = form.create_user(is_staff=True, is_superuser=True)
            team = Team.create_with_owner(form.cleaned_data["team_name"], user)
        auth_login(request, user, backend=BACKEND)
        messages.success(request, f"Welcome to Seedream Studio! {team.name} is ready.")
        return redirect("studio")
    return render(request, "registration/welcome.html", {"form": form})


@require_http_methods(["GET", "POST"])
def signup(request):
    """Open sign-up, only when the instance enables it (ALLOW_SIGNUP)."""
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is by invitation on this instance.")
    form = AccountForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        user = form.create_user()
        auth_login(request, user, backend=BACKEND)
        return redirect("team_create")
    return render(request, "registration/signup.html", {"form": form})


login = auth_views.LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True)
password_reset = auth_views.PasswordResetView.as_view(success_url="/password/reset/sent/")

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm

from gallery.models import Role


class LoginForm(AuthenticationForm):
    username = forms.CharField(
        label="E-mail or username",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        "invalid_login": "That e-mail/username and password do not match. Check both and try again.",
        "inactive": "This account is switched off. Ask your team's owner.",
    }


class AccountForm(forms.Form):
    """A new person: their name, e-mail and password (onboarding, invites, open sign-up)."""

    name = forms.CharField(label="Your name", max_length=150)
    email = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail already exists: sign in instead.")
        return email

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords are not the same.")
        elif p1:
            user = get_user_model()(email=cleaned.get("email", ""), first_name=cleaned.get("name", ""))
            try:
                password_validation.validate_password(p1, user)
            except forms.ValidationError as e:
                self.add_error("password1", e)
        return cleaned

    def create_user(self, **extra):
        User = get_user_model()
        email = self.cleaned_data["email"]
        user = User(username=unique_username(email), email=email, **extra)
        first, _, last = self.cleaned_data["name"].strip().partition(" ")
        user.first_name, user.last_name = first[:150], last[:150]
        user.set_password(self.cleaned_data["password1"])
        user.save()
        return user


def unique_username(email):
    User = get_user_model()
    base = "".join(c for c in email.split("@")[0].lower() if c.isalnum() or c in "._-")[:140] or "user"
    candidate, number = base, 1
    while User.objects.filter(username=candidate).exists():
        number += 1
        candidate = f"{base}{number}"
    return candidate


class OnboardingForm(AccountForm):
    team_name = forms.CharField(label="Team name", max_length=100)
    field_order = ["team_name", "name", "email", "password1", "password2"]


class TeamForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=100)

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the team a name.")
        return name


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="E-mail (optional)", required=False, help_text="We e-mail the link if you give an address."
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r.value, r.label) for r in membership.assignable_roles()]
        self.fields["role"].error_messages["invalid_choice"] = "You cannot give that role."


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r.value, r.label) for r in membership.assignable_roles()]
        self.fields["role"].error_messages["invalid_choice"] = "You cannot give that role."

import secrets
import unicodedata

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.db import IntegrityError, transaction

from gallery.models import Role

# Bidirectional overrides make a name display as something else ("evil\u202egnp.exe").
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_name(value, what):
    """A person's or team's name: one line of printable text, trimmed (SPEC §1). A newline in a
    name once broke the invite e-mail's subject; a control character has no place in a name."""
    value = (value or "").strip()
    if not value:
        raise forms.ValidationError(f"Write {what}.", code="blank")
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS:
            raise forms.ValidationError(
                f"{what[0].upper()}{what[1:]} must be one line of ordinary text: remove the line break or "
                f"invisible control character (U+{ord(char):04X}).",
                code="control_character",
            )
    return value


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

    def __init__(self, *args, fixed_email="", **kwargs):
        super().__init__(*args, **kwargs)
        if fixed_email:
            # An invite for an address: the account is made with that address, whatever is posted.
            self.fields["email"].initial = fixed_email
            self.fields["email"].disabled = True
            self.fields["email"].help_text = "The invite was made for this address."

    def clean_name(self):
        return clean_name(self.cleaned_data.get("name"), "your name")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(EMAIL_TAKEN)
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
        """The new account; raises EmailTaken (with the form's error set) when another sign-up
        with this e-mail was saved between the form's check and now."""
        User = get_user_model()
        email = self.cleaned_data["email"]
        first, _, last = self.cleaned_data["name"].strip().partition(" ")
        for attempt in range(5):
            user = User(username=unique_username(email, attempt), email=email, **extra)
            user.first_name, user.last_name = first[:150], last[:150]
            user.set_password(self.cleaned_data["password1"])
            try:
                with transaction.atomic():
                    user.save()
                return user
            except IntegrityError:
                if User.objects.filter(email__iexact=email).exists():
                    break
                # Two sign-ups picked the same free username at once: try another.
        self.add_error("email", EMAIL_TAKEN)
        raise EmailTaken(email)


class EmailTaken(Exception):
    pass


EMAIL_TAKEN = "An account with this e-mail already exists: sign in instead."


def unique_username(email, attempt=0):
    User = get_user_model()
    base = "".join(c for c in email.split("@")[0].lower() if c.isalnum() or c in "._-")[:140] or "user"
    if attempt:
        return f"{base}-{secrets.token_hex(3)}"
    candidate, number = base, 1
    while User.objects.filter(username=candidate).exists():
        number += 1
        candidate = f"{base}{number}"
    return candidate


class OnboardingForm(AccountForm):
    team_name = forms.CharField(label="Team name", max_length=100)
    field_order = ["team_name", "name", "email", "password1", "password2"]

    def clean_team_name(self):
        return clean_name(self.cleaned_data.get("team_name"), "the team name")


class TeamForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=100)

    def clean_name(self):
        return clean_name(self.cleaned_data.get("name"), "the team name")


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

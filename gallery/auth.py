from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


def find_user(login):
    """The user whose e-mail (any case) or username matches what was typed, or None."""
    User = get_user_model()
    login = (login or "").strip()
    if not login:
        return None
    field = "email__iexact" if "@" in login else "username"
    return User.objects.filter(**{field: login}).first()


class EmailOrUsernameBackend(ModelBackend):
    """Sign in with either the e-mail address or the username."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = find_user(username)
        if user is None:
            # Run the hasher anyway so a missing account takes as long as a wrong password.
            get_user_model()().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None


def axes_username(request, credentials):
    """Count failures per account, whichever of its names was typed."""
    typed = (credentials or {}).get("username") or request.POST.get("username", "")
    user = find_user(typed)
    return user.username if user else typed.strip().lower()

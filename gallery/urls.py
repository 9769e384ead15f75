from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from gallery.ids import IdConverter
from gallery.views import accounts, callbacks, gallery, health, media, pages, studio, teams
from gallery.views.providers import providers

register_converter(IdConverter, "id")

urlpatterns = [
    path("", studio.studio, name="studio"),
    path("history/", studio.history_fragment, name="history"),
    path("healthz/", health.healthz, name="healthz"),
    path("upstream/evolink/<uuid:task_id>/<str:token>/", callbacks.evolink, name="evolink_callback"),
    path("tasks/<uuid:task_id>/", studio.task_detail, name="task_detail"),
    path("compare/<uuid:group_id>/", studio.compare, name="compare"),
    path("tasks/<uuid:task_id>/retry/", studio.retry, name="task_retry"),
    path("tasks/<uuid:task_id>/cancel/", studio.cancel, name="task_cancel"),
    path("tasks/<uuid:task_id>/delete/", studio.delete, name="task_delete"),
    path("gallery/", gallery.gallery, name="gallery"),
    path("gallery/<id:image_id>/", gallery.image_detail, name="image_detail"),
    path("gallery/<id:image_id>/favourite/", gallery.favourite, name="image_favourite"),
    path("gallery/delete/", gallery.delete, name="gallery_delete"),
    path("gallery/download/", media.download_zip, name="gallery_zip"),
    path("usage/", pages.usage, name="usage"),
    path("api/", pages.api, name="api"),
    path("providers/", providers, name="providers"),
    path("media/image/<id:image_id>/", media.original, name="image_original"),
    path("media/image/<id:image_id>/thumb/", media.thumbnail, name="image_thumbnail"),
    path("media/image/<id:image_id>/download/", media.download, name="image_download"),
    path("media/reference/<id:reference_id>/", media.reference, name="reference_file"),
    # Accounts
    path("welcome/", accounts.welcome, name="welcome"),
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", accounts.password_change, name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", accounts.password_reset, name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", accounts.password_reset_confirm, name="password_reset_confirm"),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    # Teams
    path("team/", teams.members, name="team_members"),
    path("team/invite/", teams.invite, name="team_invite"),
    path("team/invites/<id:invite_id>/revoke/", teams.revoke_invite, name="team_invite_revoke"),
    path("team/members/<id:membership_id>/role/", teams.change_role, name="team_change_role"),
    path("team/members/<id:membership_id>/remove/", teams.remove_member, name="team_remove"),
    path("team/leave/", teams.leave, name="team_leave"),
    path("teams/new/", teams.create, name="team_create"),
    path("teams/switch/", teams.switch, name="team_switch"),
    path("invite/<str:token>/", teams.accept_invite, name="invite_accept"),
]

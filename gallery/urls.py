from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from gallery.ids import IdConverter
from gallery.views import accounts, api, api_keys, callbacks, gallery, health, media, studio, teams, usage
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
    path("usage/", usage.usage_page, name="usage"),
    path("usage/budget/", usage.budget, name="usage_budget"),
    path("usage/export.csv", usage.usage_csv, name="usage_csv"),
    path("api/", api_keys.page, name="api"),
    path("api/keys/", api_keys.create, name="api_key_create"),
    path("api/keys/<id:key_id>/revoke/", api_keys.revoke, name="api_key_revoke"),
    path("api/keys/<id:key_id>/rotate/", api_keys.rotate, name="api_key_rotate"),
    path("api/callbacks/<id:delivery_id>/redeliver/", api_keys.redeliver, name="api_redeliver"),
    # The Team API: EvoLink's paths, on the studio's own host (docs/API.md).
    path("v1/images/generations", api.generations_view, name="api_generations"),
    path("v1/tasks/<str:task_id>", api.task_view, name="api_task"),
    path("v1/credits", api.credits_view, name="api_credits"),
    path("v1/results/<str:token>", api.result_file, name="api_result"),
    path("v1/openapi.json", api.openapi_view, name="api_openapi"),
    path("api/v1/files/upload/stream", api.upload_stream, name="api_upload_stream"),
    path("api/v1/files/upload/base64", api.upload_base64, name="api_upload_base64"),
    path("api/v1/files/upload/url", api.upload_url, name="api_upload_url"),
    path("api/v1/files/quota", api.files_quota, name="api_files_quota"),
    path("api/v1/files/list", api.files_list, name="api_files_list"),
    path("api/v1/files/content/<str:token>", api.file_content, name="api_file_content"),
    path("api/v1/files/<str:file_id>", api.file_delete, name="api_file_delete"),
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
    path("team/delete/", teams.delete, name="team_delete"),
    path("teams/new/", teams.create, name="team_create"),
    path("teams/switch/", teams.switch, name="team_switch"),
    path("invite/<str:token>/", teams.accept_invite, name="invite_accept"),
]

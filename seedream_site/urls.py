from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("gallery.urls")),
]

handler400 = "gallery.views.errors.bad_request"
handler403 = "gallery.views.errors.forbidden"
handler404 = "gallery.views.errors.not_found"
handler500 = "gallery.views.errors.server_error"

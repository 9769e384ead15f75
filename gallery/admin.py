from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from gallery import models


@admin.register(models.User)
class StudioUserAdmin(UserAdmin):
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "last_login"]


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(models.Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role"]
    raw_id_fields = ["user", "team"]


@admin.register(models.Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["team", "email", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    exclude = ["token_hash"]
    raw_id_fields = ["team", "created_by", "accepted_by"]


class ReferenceInline(admin.TabularInline):
    model = models.ReferenceImage
    extra = 0
    readonly_fields = ["position", "file", "format", "width", "height", "bytes", "sha256", "upstream_url"]
    exclude = ["team"]


@admin.register(models.GenerationTask)
class GenerationTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "team", "status", "provider", "n", "created_at", "final_cost"]
    list_filter = ["status", "provider"]
    search_fields = ["prompt", "upstream_id"]
    raw_id_fields = ["team", "created_by", "retry_of"]
    inlines = [ReferenceInline]


@admin.register(models.GalleryImage)
class GalleryImageAdmin(admin.ModelAdmin):
    list_display = ["id", "team", "task", "index", "format", "width", "height", "bytes", "created_at"]
    raw_id_fields = ["team", "task"]


@admin.register(models.ReferenceImage)
class ReferenceImageAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "position", "format", "width", "height"]
    raw_id_fields = ["team", "task"]


@admin.register(models.WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["worker_id", "hostname", "pid", "started_at", "last_seen"]


@admin.register(models.SandboxRun)
class SandboxRunAdmin(admin.ModelAdmin):
    list_display = ["id", "client_ref", "created_at"]


@admin.register(models.Charge)
class ChargeAdmin(admin.ModelAdmin):
    """The cost ledger, read only: a change of prices (or an operator) never rewrites history."""

    list_display = ["id", "team", "user", "created_at", "model", "provider", "n", "images", "reserved_cost", "final_cost"]
    list_filter = ["provider", "model", "failed"]
    raw_id_fields = ["team", "user", "task"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

from decimal import Decimal
from functools import lru_cache

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from gallery import budgets, offers

register = template.Library()


@lru_cache(maxsize=64)
def _icon_svg(name):
    path = settings.BASE_DIR / "static" / "vendor" / "lucide" / f"{name}.svg"
    svg = path.read_text()
    # Decorative: the text beside each icon says what it does.
    return svg.replace("<svg", '<svg aria-hidden="true" focusable="false" class="icon"', 1)


@register.filter
def per_image(value):
    """A price per image, to its last digit ($0.0222); "–" when there is none."""
    if value is None:
        return "–"
    return f"${Decimal(value).normalize():f}" if value else "$0"


@register.simple_tag
def icon(name):
    """An inline Lucide icon from static/vendor/lucide (only the vendored ones exist)."""
    return mark_safe(_icon_svg(name))


@register.filter
def money(value):
    return budgets.money(value)


@register.simple_tag
def when(value):
    """'3 minutes ago' with the exact time on hover."""
    if value is None:
        return ""
    from django.contrib.humanize.templatetags.humanize import naturaltime

    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        value.strftime("%Y-%m-%d %H:%M:%S %Z"),
        naturaltime(value),
    )


@register.simple_tag
def at(value):
    """The exact moment, written by the browser in its reader's locale (site.js); the server's
    text is the fallback without JavaScript."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return format_html('<time datetime="{}" data-exact>{}</time>', value.isoformat(), local.strftime("%Y-%m-%d %H:%M:%S"))


@register.filter
def elapsed(task):
    """How long a task ran (or has been running): "8 s", "2 min 5 s", "1 h 3 min"."""
    from django.utils import timezone

    seconds = int(((task.finished_at or timezone.now()) - task.created_at).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@register.filter
def ratio_class(ratio):
    return "shape-" + ratio.replace(":", "-")


@register.filter
def changeable_by(obj, membership):
    """Whether this person may cancel, retry or delete it: the model's own rule."""
    return obj.may_be_changed_by(membership)


@register.filter
def split(text):
    return text.split()


@register.filter
def field_errors(form, name):
    return form.errors.get(name, [])


@register.filter
def running_any(tasks):
    return any(not task.is_final for task in tasks)


@register.filter
def provider_name(name):
    """A provider's name as people know it ("EvoLink", "Sandbox"), not its setting's id."""
    return offers.label(name)


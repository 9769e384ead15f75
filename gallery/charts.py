"""Server-drawn SVG charts (no script, no external service): the numbers and shapes a template
turns into <rect>s and <text>s."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 96, 8, 14, 30  # room for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # what a pointer or a screen reader is told about the day
    day: int

    @property
    def centre(self):
        return round(self.x + self.width / 2, 1)


def nice_ceiling(value):
    """A round top for the y axis, at least `value`: 1, 2, 3, 4, 5, 6 or 8 times a power of ten
    (whose halves are round too, for the middle line)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in map(Decimal, (1, 2, 3, 4, 5, 6, 8, 10)):
        top = step.scaleb(exponent)
        if top >= value:
            return top.quantize(Decimal(1), ROUND_CEILING) if top >= 1 else top
    return value


def spend_chart(days):
    """Spend by day as bars; each bar's label names the day, its spend and its images."""
    top = nice_ceiling(max((day.cost for day in days), default=Decimal(0)))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        height = float(day.cost / top) * plot_height if top else 0
        if day.cost and height < 1.5:
            height = 1.5  # a day with any spend stays visible
        images = f"{day.images} image{'' if day.images == 1 else 's'}"
        bars.append(Bar(
            x=round(LEFT + index * slot + slot * 0.15, 1), y=round(TOP + plot_height - height, 1),
            width=round(slot * 0.7, 1), height=round(height, 1),
            label=f"{day.day:%b} {day.day.day}: ${day.cost:,.2f}, {images}", day=day.day.day,
        ))
    ticks = [
        {"y": round(TOP + plot_height - plot_height * share, 1), "label": f"${top * Decimal(str(share)):,.2f}"}
        for share in (0, 0.5, 1)
    ]
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "base": TOP + plot_height,
        "bars": bars, "ticks": ticks, "label_y": HEIGHT - 8,
        "labelled": [bar for bar in bars if bar.day == 1 or bar.day % 5 == 0],
    }

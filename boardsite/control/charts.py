"""Line charts drawn on the server as SVG: no script, no CDN, nothing the Content-Security-Policy must allow."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, PAD = 560, 160, 36
COLOURS = {"inline": "#8a8a8a", "celery": "#2e6bd8", "lambda": "#e07b00"}


def line_chart(title: str, unit: str, lines: dict[str, list[float | None]], labels: tuple[str, str]) -> SafeString:
    """One chart: a line per runtime over equal time slices (None: no run in that slice, a gap in the line).
    ``labels``: what the left and right ends of the time axis are."""
    values = [v for points in lines.values() for v in points if v is not None]
    top = max(values) if values else 1.0
    top = top * 1.1 or 1.0
    slices = max((len(points) for points in lines.values()), default=1)
    step = (WIDTH - 2 * PAD) / max(1, slices - 1)

    def y(value: float) -> float:
        return HEIGHT - PAD / 2 - (HEIGHT - PAD) * value / top

    paths = []
    for runtime, points in lines.items():
        segments, current = [], []
        for i, value in enumerate(points):
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            current.append(f"{PAD + i * step:.1f},{y(value):.1f}")
        if current:
            segments.append(current)
        colour = COLOURS.get(runtime, "#333")
        for segment in segments:
            if len(segment) == 1:
                x_, y_ = segment[0].split(",")
                paths.append(format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}"/>', x_, y_, colour))
            else:
                points_attr = " ".join(segment)
                paths.append(
                    format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', points_attr, colour)
                )
    legend = format_html_join(
        "",
        '<text x="{}" y="14" font-size="11" fill="{}">{}</text>',
        ((WIDTH - PAD - 60 * (len(lines) - i), COLOURS.get(name, "#333"), name) for i, name in enumerate(lines)),
    )
    body = SafeString("".join(paths))
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}">'
        '<title>{title}</title><text x="{pad}" y="14" font-size="12" font-weight="bold">{title}</text>{legend}'
        '<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" stroke="#ccc"/>'
        '<text x="4" y="{topy}" font-size="10" fill="#666">{top}</text>'
        '<text x="4" y="{base}" font-size="10" fill="#666">0 {unit}</text>'
        '<text x="{pad}" y="{h}" font-size="10" fill="#666">{left}</text>'
        '<text x="{right}" y="{h}" font-size="10" fill="#666" text-anchor="end">{right_label}</text>'
        "{body}</svg>",
        w=WIDTH,
        h=HEIGHT,
        title=title,
        legend=legend,
        pad=PAD,
        base=HEIGHT - PAD / 2,
        right=WIDTH - PAD,
        topy=PAD / 2 + 10,
        top=f"{top:.0f}",
        unit=unit,
        left=labels[0],
        right_label=labels[1],
        body=body,
    )

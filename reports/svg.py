"""Bar charts as inline SVG for the HTML reports: no plotting library, no JavaScript, readable offline.

Bars carry ``class="bar"`` and ``data-series``/``data-label``/``data-value`` so a test (or a
screen reader, through ``<title>``) can read back what was drawn. A value that is missing (NaN) draws
no bar; with ``missing`` set it draws that word instead (``class="nodata"``), so a month without data
never looks like a month of zero.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#2f7d4f", "#3b6fb6", "#d08a2e", "#8a4fb0", "#b8433c", "#5a8f8f"]


# Round axis ends: the data's maximum rounded up to one of these times a power of ten, so the axis runs
# at most a quarter beyond the data (1.25 × at worst, from 1.2 to 1.5 … 8 to 10), never to twice it.
NICE_STEPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceiling(value: float) -> float:
    """The smallest round number at or above ``value`` (a step of NICE_STEPS times a power of ten).

    Examples
    --------
    >>> [nice_ceiling(v) for v in (0.0, 7.0, 101.0, 2434.0, 5.1, 0.034)]
    [1.0, 8.0, 120.0, 2500.0, 6.0, 0.04]
    """
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in NICE_STEPS:
        end = round(step * power, 12)
        if value <= end:
            return end
    return round(10 * power, 12)


def _missing_mark(series: str, label: str, word: str, x: float, baseline: float) -> str:
    """``word`` written upward from the zero line where a bar would stand."""
    return (
        f'<text class="nodata" data-series="{escape(series)}" data-label="{escape(label)}" x="{x:.1f}" '
        f'y="{baseline - 4:.1f}" font-size="10" fill="#8a6d00" transform="rotate(-90 {x:.1f} {baseline - 4:.1f})">'
        f"{escape(word)}<title>{escape(series)} {escape(label)}: {escape(word)}</title></text>"
    )


def bar_chart(
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    unit: str,
    width: int = 720,
    height: int = 280,
    missing: str | None = None,
) -> str:
    """Grouped bars, one group per label and one bar per series; negative values hang below zero;
    ``missing``: the word drawn upright in place of a missing (NaN) value, none when None."""
    left, right, top, bottom = 70, 16, 34, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    high = nice_ceiling(max([0.0, *values])) if max([0.0, *values]) > 0 else 0.0
    low = -nice_ceiling(-min([0.0, *values])) if min([0.0, *values]) < 0 else 0.0
    if high == low:  # nothing but zeros (or no data): an axis from 0 to 1
        high = 1.0
    span = high - low

    def y(value: float) -> float:
        return top + (high - value) / span * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    ticks = (0.0, high / 2, high) if low == 0 else (low, 0.0, high) if high > 0 else (low, low / 2, 0.0)
    for tick in ticks:
        label = f"{tick:,.0f}" if abs(tick) >= 1e5 else f"{tick:,.6g}"
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{label}</text>'
        )
    middle = top + plot_h / 2
    parts.append(
        f'<text x="12" y="{middle:.0f}" font-size="11" transform="rotate(-90 12 {middle:.0f})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    group_w = plot_w / max(1, len(labels))
    bar_w = group_w * 0.8 / max(1, len(series))
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, (name, vs) in enumerate(series.items()):
            value = vs[i]
            if not math.isfinite(value):
                if missing is not None:
                    parts.append(_missing_mark(name, label, missing, x0 + (j + 0.5) * bar_w, y(0.0)))
                continue
            y_top, y_bottom = sorted((y(value), y(0.0)))
            parts.append(
                f'<rect class="bar" data-series="{escape(name)}" data-label="{escape(label)}" data-value="{value!r}" '
                f'x="{x0 + j * bar_w:.1f}" y="{y_top:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{max(y_bottom - y_top, 0.5):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(name)} {escape(label)}: {value:,.1f} {escape(unit)}</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0.0):.1f}" y2="{y(0.0):.1f}" stroke="#333"/>')
    for j, name in enumerate(series):
        x = left + j * 190
        parts.append(
            f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text x="{x + 16}" y="{height - 12}" font-size="12">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

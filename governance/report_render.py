"""How a governance report looks: matplotlib plots as inline SVG and one Jinja2 template, nothing loaded remotely.

The HTML is self-contained (no script, no stylesheet or image fetched from anywhere); links point only at the
Evidently drift reports on disk (relative when they lie under MESOPS_HOME/reports) and at anchors of the report
itself (``#audit-<seq>``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from governance.report import compares_with_champion
from governance.report_document import GovernanceEvent, GovernanceReport

TEMPLATE = "report_template.html.j2"
# Marker colour per kind of rollout decision drawn on the time plots.
EVENT_COLOURS = {"promotion": "#2b6cb0", "phase": "#805ad5", "approval": "#2f855a", "rollback": "#c53030"}
OWN, CHAMPION, GREY = "#2b6cb0", "#dd6b20", "#718096"
_SVG_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


# --- plots -------------------------------------------------------------------------------------------------
# Figures are made with matplotlib's object API (no pyplot: no global backend or figure registry touched) under
# these settings, applied only while a report's plots are drawn.
STYLE = {
    "svg.fonttype": "none",  # text stays text: small files, searchable
    "svg.hashsalt": "mesops-report",  # stable element ids
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(figure: Any) -> Markup:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = _SVG_METADATA.sub("", _SVG_PROLOGUE.sub("", buffer.getvalue(), count=1))
    return Markup(text)  # produced here from numbers and labels matplotlib escapes itself


def _figure(rows: int = 1, height: float = 2.4) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.5, height * rows))
    return figure, figure.subplots(rows, 1, sharex=True, squeeze=False)


def _mark_events(axes: list[Any], events: list[GovernanceEvent]) -> None:
    """Dotted vertical lines at the rollout decisions; events close in time share one label of their audit seqs."""
    shown = sorted((e for e in events if e.kind in EVENT_COLOURS), key=lambda e: e.seq)
    if not shown:
        return
    from matplotlib import dates

    low, high = axes[0].get_xlim()
    close = max(high - low, 1.0) * 0.03  # 3 % of the axis: labels nearer than this would overlap
    groups: list[list[GovernanceEvent]] = []
    for event in shown:
        at = dates.date2num(event.occurred_at.replace(tzinfo=None))
        if groups and at - dates.date2num(groups[-1][-1].occurred_at.replace(tzinfo=None)) < close:
            groups[-1].append(event)
        else:
            groups.append([event])
        for ax in axes:
            ax.axvline(
                event.occurred_at.replace(tzinfo=None), color=EVENT_COLOURS[event.kind], linestyle=":", lw=1
            )
    for group in groups:
        rollback = any(e.kind == "rollback" for e in group)
        axes[0].annotate(
            " ".join(f"#{e.seq}" for e in group),
            (group[0].occurred_at.replace(tzinfo=None), 0.98),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color=EVENT_COLOURS["rollback"] if rollback else GREY,
            ha="left",
            va="top",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


def _timeline(axes: Iterable[Any], times: list[datetime], events: list[GovernanceEvent]) -> None:
    """Dates on the x axis (the data and the rollout decisions), then the decisions marked on it."""
    axes = list(axes)
    marked = [e.occurred_at.replace(tzinfo=None) for e in events if e.kind in EVENT_COLOURS]
    _time_axis(axes, times + marked)
    _mark_events(axes, events)


def _time_axis(axes: list[Any], times: list[datetime]) -> None:
    """At least three days wide, so a single day's point is not lost in a range of years."""
    from matplotlib import dates

    first, last = min(times), max(times)
    if last - first < timedelta(days=3):
        middle = first + (last - first) / 2
        first, last = middle - timedelta(days=1.5), middle + timedelta(days=1.5)
    locator = dates.AutoDateLocator(maxticks=8)
    for ax in axes:
        ax.set_xlim(first, last)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))


def _marker(points: int) -> float:
    """Marker size: visible for a few days, unobtrusive for months."""
    return 5.0 if points <= 30 else 2.5


def _legend(ax: Any) -> None:
    # above the plot, right of its title: never over the data
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8, frameon=False)


def _day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12)  # noon: a day's point sits in the middle of the day


def offline_plot(report: GovernanceReport) -> Markup:
    """The headline metric offline: this version, its baseline and (when another) the champion."""
    offline = report.offline
    baseline = offline.report.baseline
    labels = [f"version {report.version.version}", f"baseline ({baseline.baseline_name})"]
    values = [baseline.model_value, baseline.baseline_value]
    colours = [OWN, GREY]
    if offline.champion_value is not None:
        labels.append(f"champion (version {offline.champion_version})")
        values.append(offline.champion_value)
        colours.append(CHAMPION)
    figure, axes = _figure(height=0.45 * len(values) + 0.8)
    ax = axes[0][0]
    ax.barh(labels[::-1], values[::-1], color=colours[::-1])
    for y, value in enumerate(values[::-1]):
        ax.annotate(f" {value:.4g}", (value, y), va="center", fontsize=8)
    better = "higher" if baseline.higher_is_better else "lower"
    ax.set_title(f"{baseline.metric} on the held-out test rows ({better} is better)", loc="left")
    return _svg(figure)


def shadow_plot(report: GovernanceReport) -> Markup | None:
    """Mean prediction per day (own vs champion on the same requests) and the share that would disagree."""
    days = report.shadow.per_day
    if not days:
        return None
    paired = [d for d in days if d.paired]
    figure, axes = _figure(rows=2 if paired else 1)
    top = axes[0][0]
    top.plot(
        [_day(d.day) for d in days],
        [d.mean_own for d in days],
        "o-",
        markersize=_marker(len(days)),
        color=OWN,
        label=f"version {report.version.version}",
    )
    if paired:
        top.plot(
            [_day(d.day) for d in paired],
            [d.mean_champion for d in paired],
            "s--",
            markersize=_marker(len(paired)),
            color=CHAMPION,
            label="champion",
        )
        bottom = axes[1][0]
        bottom.plot(
            [_day(d.day) for d in paired],
            [d.disagreement_rate for d in paired],
            "o-",
            ms=_marker(len(paired)),
            color=GREY,
        )
        bottom.set_ylabel("would disagree")
        bottom.set_ylim(0, 1.1)
    top.set_ylabel(f"mean {report.shadow.prediction_key}")
    _legend(top)
    top.set_title("served predictions per day", loc="left")
    _timeline([a[0] for a in axes], [_day(d.day) for d in days], report.governance)
    return _svg(figure)


def drift_plot(report: GovernanceReport) -> Markup | None:
    """Share of drifted features per drift report; a red ring where the prediction itself drifted."""
    points = report.drift.reports
    if not points:
        return None
    figure, axes = _figure()
    ax = axes[0][0]
    at = [p.window_end.replace(tzinfo=None) for p in points]
    ax.plot(
        at, [p.share_drifted for p in points], "o-", ms=_marker(len(points)), color=OWN, label="share drifted"
    )
    drifted = [(t, p.share_drifted) for t, p in zip(at, points, strict=True) if p.prediction_drifted]
    if drifted:
        ax.scatter(
            *zip(*drifted, strict=True),
            s=120,
            facecolors="none",
            edgecolors="#c53030",
            label="prediction drifted",
        )
    ax.set_ylim(0, 1.1)  # room above 1 for the decision labels
    ax.set_ylabel("share drifted")
    _legend(ax)
    ax.set_title("drift vs training reference, per report", loc="left")
    _timeline([ax], at, report.governance)
    return _svg(figure)


def acceptance_plot(report: GovernanceReport) -> Markup | None:
    """Acceptance rate per day with its Wilson 95 % interval (days with decisions only)."""
    days = [d for d in report.acceptance.per_day if d.decided]
    if not days:
        return None
    figure, axes = _figure()
    ax = axes[0][0]
    x = [_day(d.day) for d in days]
    rates = [d.rate or 0.0 for d in days]
    below = [r - (d.lower or 0.0) for r, d in zip(rates, days, strict=True)]
    above = [(d.upper or 0.0) - r for r, d in zip(rates, days, strict=True)]
    ax.errorbar(x, rates, yerr=[below, above], fmt="o", ms=_marker(len(x)), color=OWN, ecolor=GREY, capsize=2)
    for xi, r, d in zip(x, rates, days, strict=True) if len(days) <= 14 else ():  # n in the table beyond that
        ax.annotate(f"n={d.decided}", (xi, r), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accepted / decided")
    ax.set_title("planner acceptance per day the recommendation was made (Wilson 95 %)", loc="left")
    _timeline([ax], x, report.governance)
    return _svg(figure)


def realized_plot(report: GovernanceReport) -> Markup | None:
    """Each realized metric of the family per prediction day (gains over the champion are in the table)."""
    days = report.realized.per_day
    names = [s.signal for s in days[0].signals if not compares_with_champion(s.signal)] if days else []
    if not names:
        return None
    figure, axes = _figure(rows=len(names), height=1.8)
    for row, name in enumerate(names):
        ax = axes[row][0]
        found = [(d, next(s for s in d.signals if s.signal == name)) for d in days]
        shown = [(_day(d.day), s.value) for d, s in found if s.value is not None]
        if shown:
            ax.plot(*zip(*shown, strict=True), "o-", ms=_marker(len(shown)), color=OWN)
        ax.set_ylabel(name.removeprefix("realized."))
    axes[0][0].set_title("realized accuracy per prediction day (outcomes posted so far)", loc="left")
    _timeline([a[0] for a in axes], [_day(d.day) for d in days], report.governance)
    return _svg(figure)


PLOTS: dict[str, Callable[[GovernanceReport], Markup | None]] = {
    "offline": offline_plot,
    "shadow": shadow_plot,
    "drift": drift_plot,
    "acceptance": acceptance_plot,
    "realized": realized_plot,
}


# --- the HTML ------------------------------------------------------------------------------------------------
def _number(value: object, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _linker(folder: Path, reports_dir: Path) -> Callable[[str | None], str | None]:
    """href of a file: relative to the report's folder when under reports_dir, else a file:// URI."""

    def href(path: str | None) -> str | None:
        if not path:
            return None
        target = Path(path) if Path(path).is_absolute() else reports_dir / path
        if target.resolve().is_relative_to(reports_dir.resolve()):
            return Path(os.path.relpath(target.resolve(), folder.resolve())).as_posix()
        return target.resolve().as_uri()

    return href


def render_html(report: GovernanceReport, folder: Path, reports_dir: Path, json_name: str) -> str:
    """The report as one HTML page written into ``folder`` (links are relative to it)."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters |= {"num": _number, "pct": _percent, "when": _when}
    from matplotlib import rc_context

    with rc_context(STYLE):
        plots = {name: plot(report) for name, plot in PLOTS.items()}
    evaluations = {g.evaluation.audit_seq for g in report.gates}
    events = {e.seq for e in report.governance}
    return environment.get_template(TEMPLATE).render(
        r=report,
        plots=plots,
        href=_linker(folder, reports_dir),
        anchored=evaluations | events,
        json_name=json_name,
    )

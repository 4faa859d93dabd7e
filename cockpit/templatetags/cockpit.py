"""The dashboard on the admin index: ``{% cockpit_dashboard %}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from credentials.models import ConnectionStatus
from ocpi_platform.humanize import ago
from ocpi_platform.ocpi.types import now_utc

from .. import dashboard

register = template.Library()

BAR = 5  # px per hour
HEIGHT = 28


def bars(activity: dashboard.Activity) -> SafeString:
    """24 hourly bars (oldest left): deliveries in grey, the part with errors in red."""
    peak = max(activity.deliveries) or 1
    rects = []
    for hour, (count, errors) in enumerate(zip(activity.deliveries, activity.errors, strict=True)):
        if not count:
            continue
        height = max(round(HEIGHT * count / peak), 1)
        bad = round(height * errors / count) if errors else 0
        x = hour * (BAR + 1)
        rects.append((x, HEIGHT - height, BAR, height - bad, "#79aec8", count, errors))
        if bad:
            rects.append((x, HEIGHT - bad, BAR, bad, "#c62828", count, errors))
    body = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} deliveries, {} with '
        "errors</title></rect>",
        rects,
    )
    width = dashboard.HOURS * (BAR + 1)
    return format_html(
        '<svg class="cockpit-chart" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="deliveries per hour, last 24 hours">'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#ccc"/>{}</svg>',
        width,
        HEIGHT,
        width,
        HEIGHT,
        HEIGHT - 0.5,
        width,
        HEIGHT - 0.5,
        body,
    )


def per_partner(
    activity: list[dashboard.Activity], box: dashboard.OutboxSummary, now: datetime
) -> list[dict[str, Any]]:
    """One row per partner with deliveries in the last 24 hours or rows pending or failed."""
    rows: dict[int, dict[str, Any]] = {}
    for item in activity:
        rows[item.partner_id] = {
            "partner_id": item.partner_id,
            "name": item.name,
            "chart": bars(item),
            "total": item.total,
            "errors": item.total_errors,
        }
    for row in box.rows:
        entry = rows.setdefault(
            row.partner_id,
            {"partner_id": row.partner_id, "name": row.name, "chart": "", "total": 0, "errors": 0},
        )
        entry.update(
            pending=row.pending,
            failed=row.failed,
            oldest=ago(row.oldest_pending, now) if row.oldest_pending else "",
        )
    return sorted(rows.values(), key=lambda r: (r["name"], r["partner_id"]))


def _since(moment: datetime | None, now: datetime) -> str:
    return ago(moment, now) if moment else "unknown"


@register.inclusion_tag("cockpit/dashboard.html", takes_context=True)
def cockpit_dashboard(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("credentials.view_partner"):
        return {"visible": False}
    now = now_utc()
    status = dashboard.partners_by_status()
    box = dashboard.outbox()
    partner_url = reverse("admin:credentials_partner_changelist")
    deliveries_url = reverse("admin:outbox_delivery_changelist")
    activity = dashboard.activity(now)
    return {
        "visible": True,
        "now": now,
        "status": status,
        "status_cards": [
            (
                name,
                status.counts.get(name, 0),
                f"{partner_url}?state__exact=REGISTERED&status__exact={name}",
            )
            for name in ConnectionStatus.values
        ],
        "offline": [(p, _since(p.since, now)) for p in status.offline],
        "suspended": [(p, _since(p.since, now)) for p in status.suspended],
        "outbox": box,
        "outbox_oldest": ago(box.oldest_pending, now) if box.oldest_pending else "",
        "deliveries_url": deliveries_url,
        "per_partner": per_partner(activity, box, now),
        "pulls": [
            (
                p,
                ago(p.finished_at, now) if p.finished_at else "",
                ago(p.synced_until, now) if p.synced_until else "",
            )
            for p in dashboard.last_pulls()
        ],
    }

"""Durations for people: "40 seconds ago", "3 minutes ago", never "0 minutes ago"."""

from __future__ import annotations

from datetime import datetime

from django.utils.timesince import timesince


def ago(moment: datetime, now: datetime) -> str:
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "just now"
    if seconds < 60:
        whole = int(seconds)
        return f"{whole} second ago" if whole == 1 else f"{whole} seconds ago"
    return f"{timesince(moment, now, depth=1)} ago"

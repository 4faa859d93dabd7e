"""Signals other modules listen to: the credentials app knows none of them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the transaction that registered a partner committed; kwargs: partner_id.
partner_registered = Signal()

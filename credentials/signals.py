"""Signals other modules listen to: the credentials app knows none of them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the transaction that registered a partner committed; kwargs: partner_id.
partner_registered = Signal()

# Sent inside the transaction that changed a partner's HubClientInfo status, so that receivers
# write their outbox rows with the change (use transaction.on_commit for anything else);
# kwargs: partner (the locked Partner, already saved), old and new (ConnectionStatus values).
partner_status_changed = Signal()

# Sent after a ping's outcome was stored (outside its transaction); kwargs: partner_id, millis
# (the ping's duration), ok (it answered).
partner_pinged = Signal()

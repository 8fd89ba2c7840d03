"""Webhook notifications of the cloud: conditions worth telling someone (a device gone
silent, a fleet alarm, a stopped rollout), told once when raised and once when they
clear, through an outbox that forgets a call only when the receiver accepted it.
docs/cloud.md "Notifications"."""

from cloud_sync.notifications.conditions import Condition, current_conditions
from cloud_sync.notifications.outbox import NotificationPass

__all__ = ["Condition", "NotificationPass", "current_conditions"]

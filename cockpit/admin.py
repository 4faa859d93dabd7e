"""The periodic tasks page of django-celery-beat, made to show what is scheduled.

Its form leaves "Task (registered)" blank for an existing entry (the name is only in "Task
(custom)"), and its script writes "Translation: undefined" under the crontab of an entry that
has none (ours use intervals).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask


class RegisteredTaskForm(PeriodicTaskForm):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        task = getattr(self.instance, "task", "")
        choices = {value for value, _ in self.fields["regtask"].widget.choices}
        if task and task in choices:
            self.initial.setdefault("regtask", task)


class CockpitPeriodicTaskAdmin(PeriodicTaskAdmin):  # type: ignore[misc]
    form = RegisteredTaskForm
    change_form_template = "admin/cockpit/periodictask_change_form.html"


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, CockpitPeriodicTaskAdmin)

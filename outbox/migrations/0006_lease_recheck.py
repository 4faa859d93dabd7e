from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0005_lease_scheduled_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxlease",
            name="recheck",
            field=models.BooleanField(
                default=False,
                db_default=False,
                help_text="A drain found the lease held: the drain holding it looks for new rows again when it releases the lease, and changes meanwhile queue no task.",
            ),
        ),
    ]

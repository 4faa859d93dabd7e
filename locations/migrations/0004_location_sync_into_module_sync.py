"""LocationSync rows become the kit's ModuleSync rows of module "locations"; LocationSync is
then a proxy of ModuleSync."""

from django.db import migrations

FIELDS = (
    "state",
    "started_at",
    "progress_at",
    "finished_at",
    "retry_at",
    "waits",
    "next_url",
    "full",
    "pages",
    "total",
    "received",
    "stored",
    "rejected",
    "message",
    "synced_until",
)


def forwards(apps, schema_editor):
    old = apps.get_model("locations", "LocationSync")
    new = apps.get_model("kit", "ModuleSync")
    new.objects.bulk_create(
        [
            new(
                partner_id=row.partner_id,
                module="locations",
                **{f: getattr(row, f) for f in FIELDS},
            )
            for row in old.objects.all()
        ]
    )


def backwards(apps, schema_editor):
    old = apps.get_model("locations", "LocationSync")
    new = apps.get_model("kit", "ModuleSync")
    old.objects.bulk_create(
        [
            old(partner_id=row.partner_id, **{f: getattr(row, f) for f in FIELDS})
            for row in new.objects.filter(module="locations")
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("kit", "0001_module_sync"),
        ("locations", "0003_pull_progress"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
        migrations.DeleteModel(name="LocationSync"),
        migrations.CreateModel(
            name="LocationSync",
            fields=[],
            options={"proxy": True, "indexes": [], "constraints": []},
            bases=("kit.modulesync",),
        ),
    ]

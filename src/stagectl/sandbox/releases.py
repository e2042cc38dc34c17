"""Migrations that the release tests and the release benchmark add to copies of the demo app:
one that changes nothing (a release with a pending migration) and one that fails on purpose (the
gated migration step must stop the release and leave the old one serving)."""

from __future__ import annotations

NOOP_MIGRATION = '''from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]
'''


def failing_migration(after: str) -> str:
    """A migration of the demo app's `notes` app, run after migration `after`, that raises."""
    return f'''from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("this migration fails on purpose")


class Migration(migrations.Migration):
    dependencies = [("notes", "{after}")]
    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
'''

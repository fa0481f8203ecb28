"""The dead letter queue's record (issue 8): kind, raw fields, evidence, status and who handled it.

``requeued_at`` was reserved for a manual requeue that never existed and was never written; it
becomes ``handled_at``, and a row that has one (none should) is marked ``requeued``. Existing rows
were all stream entries stored by the matcher: their payload was field ``c``, their first and last
failure are when they were stored.
"""

import json

import django.utils.timezone
from django.db import migrations, models


def fill_existing(apps, schema_editor):
    DeadLetter = apps.get_model("orders", "DeadLetter")
    for letter in DeadLetter.objects.all().iterator():
        letter.first_failed_at = letter.last_failed_at = letter.created_at
        letter.original_payload = letter.payload
        letter.fields = {"c": letter.payload}
        letter.reason_kind = "malformed" if letter.reason.startswith("malformed command") else "error"
        if letter.handled_at is not None:
            letter.status = "requeued"
        try:
            command = json.loads(letter.payload)
            order_id = command.get("id") if isinstance(command, dict) else None
        except ValueError:
            order_id = None
        letter.order_id = order_id if isinstance(order_id, int) and 0 < order_id < 2**63 else None
        letter.save()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_order_id_sequence"),
    ]

    operations = [
        migrations.RenameField(
            model_name="deadletter",
            old_name="requeued_at",
            new_name="handled_at",
        ),
        migrations.AddField(
            model_name="deadletter",
            name="exception",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="fields",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="first_failed_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="deadletter",
            name="handled_by",
            field=models.CharField(blank=True, default="", max_length=150),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="handled_note",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="kind",
            field=models.CharField(choices=[("stream", "Stream"), ("task", "Task")], default="stream", max_length=8),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="last_failed_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="deadletter",
            name="order_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="original_payload",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="reason_kind",
            field=models.CharField(
                choices=[("malformed", "Malformed"), ("error", "Error"), ("task", "Task")],
                default="error",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="requeued_as",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="status",
            field=models.CharField(
                choices=[("dead", "Dead"), ("requeued", "Requeued"), ("discarded", "Discarded")],
                default="dead",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="task_args",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="task_kwargs",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="task_name",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.AddField(
            model_name="deadletter",
            name="traceback",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="deadletter",
            name="correlation_id",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="deadletter",
            name="entry_id",
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name="deadletter",
            name="market",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name="deadletter",
            name="payload",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(fill_existing, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(fields=["status", "handled_at"], name="idx_dead_letters_status"),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(fields=["market", "status"], name="idx_dead_letters_market_status"),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(fields=["entry_id"], name="idx_dead_letters_entry"),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(fields=["correlation_id"], name="idx_dead_letters_correlation"),
        ),
        migrations.AddIndex(
            model_name="deadletter",
            index=models.Index(fields=["order_id"], name="idx_dead_letters_order"),
        ),
    ]

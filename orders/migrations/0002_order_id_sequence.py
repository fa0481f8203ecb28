"""Order ids come from a MariaDB sequence, in blocks (see ``orders.ids``).

A sequence is not transactional: a block taken inside a transaction that rolls back is never handed
out again, so two processes can never share ids.
"""

from django.db import migrations

BLOCK = 1000  # orders.ids.BLOCK_SIZE: one sequence round trip per 1,000 ids per process


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [
        migrations.RunSQL(
            f"CREATE SEQUENCE order_id_blocks START WITH 1 INCREMENT BY {BLOCK} NOCACHE",
            "DROP SEQUENCE order_id_blocks",
        ),
    ]

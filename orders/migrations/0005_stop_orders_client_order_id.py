"""Issue 10: stop orders (base_price, stop_condition, the stopping status, longer types) and the
client's idempotent client_order_id, unique per user."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0004_api_keys"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="base_price",
            field=models.DecimalField(blank=True, decimal_places=10, max_digits=30, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="client_order_id",
            field=models.CharField(blank=True, db_collation="utf8mb4_nopad_bin", max_length=36, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="stop_condition",
            field=models.CharField(blank=True, choices=[("ge", "Ge"), ("le", "Le")], default="", max_length=2),
        ),
        migrations.AlterField(
            model_name="order",
            name="status",
            field=models.CharField(
                choices=[
                    ("new", "New"),
                    ("stopping", "Stopping"),
                    ("pending", "Pending"),
                    ("partially_filled", "Partially Filled"),
                    ("executed", "Executed"),
                    ("canceled", "Canceled"),
                    ("rejected", "Rejected"),
                ],
                default="new",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="type",
            field=models.CharField(
                choices=[
                    ("limit", "Limit"),
                    ("market", "Market"),
                    ("stop_limit", "Stop Limit"),
                    ("stop_market", "Stop Market"),
                ],
                max_length=11,
            ),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(
                fields=("user", "client_order_id"), name="uniq_orders_user_client_order_id"
            ),
        ),
    ]

"""API keys for signed requests (issue 9): the secret kept only encrypted, scopes, an IP allowlist."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0003_dead_letter_queue'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key_id', models.CharField(max_length=32, unique=True)),
                ('label', models.CharField(blank=True, default='', max_length=100)),
                ('scopes', models.CharField(max_length=16)),
                ('allowed_ips', models.JSONField(blank=True, default=list)),
                ('secret_encrypted', models.CharField(max_length=255)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API key',
                'db_table': 'api_keys',
                'constraints': [models.CheckConstraint(condition=models.Q(('scopes__in', ['read', 'trade', 'read,trade'])), name='chk_api_keys_scopes')],
            },
        ),
    ]

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders.apikeys import connect_signals

        connect_signals()  # a deactivated user's API keys stop working at once

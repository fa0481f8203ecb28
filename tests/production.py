"""An environment under which ``settings.prod`` starts: every secret it requires, none of them real."""

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "settings.prod",
    "DJANGO_SECRET_KEY": "a-long-random-test-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "MYSQL_USER": "spot",
    "MYSQL_PASSWORD": "x",
    "DJANGO_ALLOWED_HOSTS": "spot.example",
    "API_KEY_ENCRYPTION_KEYS": "b3X6vG2o1nF0qK8yVtQm4cR7sJ9eH5dA1zW3pL6uN0I=",
}

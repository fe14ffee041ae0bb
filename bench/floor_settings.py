"""Settings of the bare floor that ``make bench`` serves beside the app (bench/floor.py).

No application, no middleware, no database, no authentication: Django's request handling,
one DRF view and one Redis GET. Served by the same server, with the same worker count, as
the app (``DJANGO_SETTINGS_MODULE=bench.floor_settings``), so the ceiling's ratio to it is
what the project's own stack costs (docs/BENCHMARKS.md, "The floor").
"""

SECRET_KEY = "bench-floor-not-a-secret"  # loopback benchmark only
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.floor"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict = {}
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}

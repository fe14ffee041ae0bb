"""WSGI entry point (granian, started by ``python -m inbo.server``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbo.settings")
application = get_wsgi_application()

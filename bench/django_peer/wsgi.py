"""WSGI entry point: ``granian --interface wsgi bench.django_peer.wsgi:application``."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_peer.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

"""A minimal Django project: the peer for ``bench/scaleout_bench.py`` (bench-only dependency).

``SessionMiddleware`` with django-redis cache sessions on the benchmark's private Redis
(``DJANGO_PEER_REDIS_URL``) and one view, ``/auth/check``: 200 for a logged-in session, else
401 (the Django equivalent of dojang's forward-auth endpoint). ``POST /login`` marks the session
logged in and sets the ``sessionid`` cookie. Served by granian (WSGI, 1 worker).
"""

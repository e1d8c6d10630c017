"""A tiny relying party that signs in with dojang (see ``app.py``)."""

"""Route modules, one per surface: pages, JSON API, forward auth, operations."""

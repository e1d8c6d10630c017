"""Import every table module so ``Base.metadata`` knows the whole schema (for migrations)."""

from dojang.storage import (
    accounts_tables,
    audit_tables,
    events_tables,
    oauth_tables,
    oidc_tables,
    sessions_tables,
    tokens_tables,
)

__all__ = [
    "accounts_tables",
    "audit_tables",
    "events_tables",
    "oauth_tables",
    "oidc_tables",
    "sessions_tables",
    "tokens_tables",
]

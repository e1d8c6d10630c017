"""Server-side sessions: the record, the store protocol and its backends, the manager.

Build a manager with ``SessionManager(open_session_store(setting, db), policy)``, where
``open_session_store`` comes from :mod:`dojang.sessions.backends`.
"""

from dojang.sessions.manager import SessionManager, SessionPolicy
from dojang.sessions.model import Session
from dojang.sessions.store import SessionStore

__all__ = ["Session", "SessionManager", "SessionPolicy", "SessionStore"]

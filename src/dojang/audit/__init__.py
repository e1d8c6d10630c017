"""The audit trail: who did what to whose session or account, when and from where."""

from dojang.audit.log import AuditLog, AuditRecord, session_ref

__all__ = ["AuditLog", "AuditRecord", "session_ref"]

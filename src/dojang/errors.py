"""Every error dojang raises, in one tree.

Each class carries a short machine-readable ``code`` (used in JSON bodies and metrics) and a
human message. The HTTP layer maps these to status codes at the edge; the core never builds
responses.

    DojangError
    ├── ConfigError                      bad settings; start-up refuses (message names the option)
    ├── KeyFileError                     a key file is missing, corrupt or fails its self-test
    ├── InvalidToken                     anything wrong with a presented token → 401
    │   ├── MalformedToken               not a strict compact JWS / bad JSON / bad base64url
    │   ├── TokenTooLarge                over the size cap, rejected before decoding
    │   ├── UnsupportedHeader            header parameter outside {alg, kid, typ}
    │   ├── AlgorithmNotAllowed          alg not in the allow-list or not the key's bound alg
    │   ├── UnknownKey                   kid missing, blank, or not in the key set
    │   ├── BadSignature                 signature does not verify
    │   ├── WrongTokenType               typ missing or not the expected one
    │   ├── InvalidClaims                iss/aud/sub/required claims wrong
    │   │   ├── ExpiredToken             exp in the past (after leeway)
    │   │   ├── NotYetValid              nbf/iat in the future (after leeway)
    │   │   ├── LifetimeTooLong          exp - iat over the kind's maximum
    │   │   └── WrongSubjectKind         user token where a service token is required, or reverse
    │   ├── RevokedToken                 jti, sid or user revoked
    │   ├── TokenAlreadyUsed             one-time token replayed
    │   └── KeysUnavailable              no trustworthy keys (JWKS fetch failed past staleness)
    ├── SessionError
    │   ├── SessionNotFound              unknown, expired or ended session
    │   ├── SessionCollision             create() hit an existing key (retry with a new id)
    │   └── SessionDataTooLarge          session data over the size limit
    ├── AuthError
    │   ├── InvalidCredentials           one generic error for every bad login
    │   ├── Throttled                    too many attempts; retry_after seconds
    │   └── UserExists / UserNotFound / WeakPassword
    └── StoreUnavailable                 a backing store did not answer: callers fail closed
"""

from __future__ import annotations


class DojangError(Exception):
    """Root of every error dojang raises on purpose."""

    code: str = "dojang_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()

    def __str__(self) -> str:
        return self.message


class ConfigError(DojangError):
    """The configuration is invalid; ``problems`` lists every problem found at once."""

    code = "config_error"

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(self.problems))


class KeyFileError(DojangError):
    """A key file is missing, corrupt, of the wrong type, or fails its self-test."""

    code = "key_file_error"


# --- tokens -------------------------------------------------------------------------------


class InvalidToken(DojangError):
    """The token is not acceptable."""

    code = "invalid_token"


class MalformedToken(InvalidToken):
    """The token is not a strictly well-formed compact JWS."""

    code = "malformed_token"


class TokenTooLarge(MalformedToken):
    """The token exceeds the size limit."""

    code = "token_too_large"


class UnsupportedHeader(InvalidToken):
    """The JOSE header carries a parameter dojang does not accept."""

    code = "unsupported_header"


class AlgorithmNotAllowed(InvalidToken):
    """The algorithm is not allowed, or is not the algorithm bound to the key."""

    code = "algorithm_not_allowed"


class UnknownKey(InvalidToken):
    """No key with this kid is trusted."""

    code = "unknown_key"


class BadSignature(InvalidToken):
    """The signature does not verify."""

    code = "bad_signature"


class WrongTokenType(InvalidToken):
    """The token's typ is missing or is not the expected kind."""

    code = "wrong_token_type"


class InvalidClaims(InvalidToken):
    """A claim is missing, malformed or does not match policy."""

    code = "invalid_claims"


class ExpiredToken(InvalidClaims):
    """The token has expired."""

    code = "expired_token"


class NotYetValid(InvalidClaims):
    """The token is not valid yet (nbf or iat in the future)."""

    code = "not_yet_valid"


class LifetimeTooLong(InvalidClaims):
    """The token's lifetime exceeds the maximum for its kind."""

    code = "lifetime_too_long"


class WrongSubjectKind(InvalidClaims):
    """The token acts for the wrong kind of subject (a user's session vs a service account)."""

    code = "wrong_subject_kind"


class RevokedToken(InvalidToken):
    """The token, its session or its user's sessions were revoked."""

    code = "revoked_token"


class TokenAlreadyUsed(InvalidToken):
    """This one-time token was already redeemed."""

    code = "token_already_used"


class KeysUnavailable(InvalidToken):
    """No trustworthy verification keys are available right now."""

    code = "keys_unavailable"


# --- sessions -----------------------------------------------------------------------------


class SessionError(DojangError):
    """A session operation failed."""

    code = "session_error"


class SessionNotFound(SessionError):
    """The session does not exist, has expired or was ended."""

    code = "session_not_found"


class SessionCollision(SessionError):
    """A session with this key already exists."""

    code = "session_collision"


class SessionDataTooLarge(SessionError):
    """The session data exceeds the size limit."""

    code = "session_data_too_large"


# --- accounts -----------------------------------------------------------------------------


class AuthError(DojangError):
    """An authentication or account operation failed."""

    code = "auth_error"


class InvalidCredentials(AuthError):
    """The username or password is incorrect."""

    code = "invalid_credentials"


class Throttled(AuthError):
    """Too many attempts; try again later."""

    code = "throttled"

    def __init__(self, retry_after: float, message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message or f"too many attempts; retry after {retry_after:.0f} s")


class UserExists(AuthError):
    """A user with this name already exists."""

    code = "user_exists"


class UserNotFound(AuthError):
    """No such user."""

    code = "user_not_found"


class WeakPassword(AuthError):
    """The password does not meet the policy."""

    code = "weak_password"


class StoreUnavailable(DojangError):
    """A backing store did not answer in time; callers must fail closed."""

    code = "store_unavailable"

"""Users, argon2id password hashing and login throttling."""

from dojang.accounts.errors import InvalidUsername
from dojang.accounts.passwords import PasswordHasher, check_password_policy
from dojang.accounts.throttle import LoginThrottle, ThrottlePolicy
from dojang.accounts.users import Accounts, User, UserRepository, normalize_username

__all__ = [
    "Accounts",
    "InvalidUsername",
    "LoginThrottle",
    "PasswordHasher",
    "ThrottlePolicy",
    "User",
    "UserRepository",
    "check_password_policy",
    "normalize_username",
]

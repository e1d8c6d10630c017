"""``verify``: dojang's ``Verifier`` vs peer JWT libraries vs the raw-signature floor.

Every verifier gets the *same* dojang access token and does the full check a business server
needs: signature, ``exp``, ``iat``/``nbf``, ``iss`` exact, ``aud`` exact, header ``typ``
(``at+jwt``). Where a library cannot check something itself, the wrapper does it and that work
is timed too. Before timing, each verifier must accept the token and reject tampered,
wrong-audience, wrong-type and expired ones, so no error path is ever timed.

Targets (issue): dojang within 1.15x of the floor and faster than every peer; issuance within
1.3x of raw signing.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from bench._common import Case, fmt, machine_info, machine_md, md_table, time_cases

ISSUER = "https://auth.example"
AUDIENCE = "orders-api"
SCOPE = "orders:read"
SUB = "user-3f9c2a"
SID = "IPq_OuBzQNwxXfKYuBvLLw"
CLIENT_ID = "spa-web"
LEEWAY = 5
ALGORITHMS = ("EdDSA", "ES256")
PEERS = ("PyJWT", "joserfc", "jwcrypto", "Authlib")
VERIFY_TARGET_VS_FLOOR = 1.15
ISSUE_TARGET_VS_FLOOR = 1.3

Verify = Callable[[str], Mapping[str, Any]]


class Unsupported(Exception):
    """A library cannot do what the benchmark asks; the message says why."""


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _quiet_known_warnings() -> None:
    # joserfc warns "EdDSA is deprecated via RFC 9864" on every EdDSA call: warn() still runs
    # (and is timed) under an "ignore" filter, it just prints nothing. authlib.jose warns
    # that it is deprecated in favour of joserfc.
    warnings.filterwarnings("ignore", message=r"EdDSA is deprecated")
    warnings.filterwarnings("ignore", message=r"authlib\.jose module is deprecated")


def _check_typ(header: Mapping[str, Any]) -> None:
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != "at+jwt":
        raise ValueError("wrong typ")


# --- verifiers ------------------------------------------------------------------------------


def dojang_verifier(alg: str, jwks: Mapping[str, Any]) -> Verify:
    from dojang.verify import Verifier

    verifier = Verifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks, algorithms=(alg,), leeway=LEEWAY
    )
    return verifier.verify


OWN_WORK = "dojang, signature check stubbed (its own work alone)"


def own_work_verifier(alg: str, jwks: Mapping[str, Any]) -> Verify:
    """Informational: dojang's Verifier with every check but the signature (a stub says yes).

    Timed on its own, warm, this is what dojang adds to the floor; ``dojang - floor`` minus this
    is what the same work costs when it runs right after a real signature check (the
    signature's code and tables have pushed the interpreter's out of the CPU caches).
    """
    from dojang.jose import KeySet
    from dojang.verify import Verifier

    keyset = KeySet.from_jwks(jwks)
    held = keyset.keys()  # a list of Key (KeySet is not a mapping)
    for key in held:
        object.__setattr__(key, "verify", lambda signature, message: True)  # bench only
    verifier = Verifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=keyset, algorithms=(alg,), leeway=LEEWAY
    )
    return verifier.verify


def pyjwt_verifier(alg: str, jwk: Mapping[str, Any]) -> Verify:
    import jwt

    key = jwt.PyJWK(dict(jwk), algorithm=alg)
    options: Any = {"require": ["exp", "iat", "iss", "aud", "sub"]}

    def verify(token: str) -> Mapping[str, Any]:
        # decode_complete returns the header too, so typ costs no second parse (kinder to
        # PyJWT than jwt.decode + jwt.get_unverified_header, which parses the header twice).
        decoded = jwt.decode_complete(
            token,
            key,
            algorithms=[alg],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options=options,
        )
        _check_typ(decoded["header"])
        payload: Mapping[str, Any] = decoded["payload"]
        return payload

    return verify


def joserfc_verifier(alg: str, jwk: Mapping[str, Any]) -> Verify:
    from joserfc import jwk as jf_jwk
    from joserfc import jwt as jf_jwt

    key = jf_jwk.import_key(dict(jwk))
    registry = jf_jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    )

    def verify(token: str) -> Mapping[str, Any]:
        decoded = jf_jwt.decode(token, key, algorithms=[alg])
        _check_typ(decoded.header)
        registry.validate(decoded.claims)
        return decoded.claims

    return verify


def jwcrypto_verifier(alg: str, jwk: Mapping[str, Any]) -> Verify:
    from jwcrypto import jwk as jc_jwk
    from jwcrypto import jwt as jc_jwt

    key = jc_jwk.JWK(**jwk)
    check_claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": None, "iat": None, "sub": None}

    def verify(token: str) -> Mapping[str, Any]:
        # expected_type is JWS-vs-JWE, not the typ header: typ is checked by hand (timed).
        decoded = jc_jwt.JWT(
            jwt=token, key=key, algs=[alg], check_claims=check_claims, expected_type="JWS"
        )
        _check_typ(json.loads(decoded.header))
        claims: Mapping[str, Any] = json.loads(decoded.claims)
        return claims

    return verify


def authlib_verifier(alg: str, jwk: Mapping[str, Any]) -> Verify:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib.jose is deprecated in favour of joserfc
        from authlib.jose import JsonWebKey, JsonWebToken

    key = JsonWebKey.import_key(dict(jwk))
    codec = JsonWebToken([alg])
    claims_options = {
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": AUDIENCE},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
    }

    def verify(token: str) -> Mapping[str, Any]:
        claims = codec.decode(token, key, claims_options=claims_options)
        _check_typ(claims.header)
        claims.validate(leeway=LEEWAY)
        out: Mapping[str, Any] = claims
        return out

    return verify


PEER_FACTORIES: dict[str, Callable[[str, Mapping[str, Any]], Verify]] = {
    "PyJWT": pyjwt_verifier,
    "joserfc": joserfc_verifier,
    "jwcrypto": jwcrypto_verifier,
    "Authlib": authlib_verifier,
}


# --- floors ---------------------------------------------------------------------------------


def public_key(jwk: Mapping[str, Any]) -> Ed25519PublicKey | ec.EllipticCurvePublicKey:
    if jwk["kty"] == "OKP":
        return Ed25519PublicKey.from_public_bytes(_b64d(jwk["x"]))
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64d(jwk["x"]), "big"),
        int.from_bytes(_b64d(jwk["y"]), "big"),
        ec.SECP256R1(),
    )
    return numbers.public_key()


def private_key(jwk: Mapping[str, Any]) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if jwk["kty"] == "OKP":
        return Ed25519PrivateKey.from_private_bytes(_b64d(jwk["d"]))
    return ec.derive_private_key(int.from_bytes(_b64d(jwk["d"]), "big"), ec.SECP256R1())


def floor_verify(token: str, jwk: Mapping[str, Any]) -> Callable[[], None]:
    """Raw signature check of the token's signing input: the cost no verifier can avoid."""
    signing_input, _, sig_b64 = token.encode("ascii").rpartition(b".")
    sig = _b64d(sig_b64.decode("ascii"))
    key = public_key(jwk)
    if isinstance(key, Ed25519PublicKey):
        ed_key = key

        def floor() -> None:
            ed_key.verify(sig, signing_input)

        return floor
    ec_key = key
    ecdsa = ec.ECDSA(hashes.SHA256())

    def floor_es() -> None:
        # RFC 7518 §3.4: JWS carries R||S; OpenSSL wants DER. The conversion is inherent.
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        ec_key.verify(der, signing_input, ecdsa)

    return floor_es


def minimal_jws(token: str, jwk: Mapping[str, Any]) -> Callable[[], object]:
    """Informational: split + base64 + two ``json.loads`` + signature, no claim checks."""
    key = public_key(jwk)
    ecdsa = ec.ECDSA(hashes.SHA256())

    def run() -> object:
        h, p, s = token.split(".")
        header = json.loads(_b64d(h))
        sig = _b64d(s)
        signing_input = token[: len(h) + len(p) + 1].encode("ascii")
        if isinstance(key, Ed25519PublicKey):
            key.verify(sig, signing_input)
        else:
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            key.verify(der, signing_input, ecdsa)
        return header, json.loads(_b64d(p))

    return run


# --- issuance -------------------------------------------------------------------------------


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": SUB,
        "aud": AUDIENCE,
        "exp": now + 60,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "sid": SID,
        "client_id": CLIENT_ID,
        "scope": SCOPE,
    }


def floor_sign(signing_input: bytes, jwk: Mapping[str, Any]) -> Callable[[], bytes]:
    """Raw signing of a same-size signing input (ES256 includes DER→R||S)."""
    key = private_key(jwk)
    if isinstance(key, Ed25519PrivateKey):
        ed_key = key

        def floor() -> bytes:
            return ed_key.sign(signing_input)

        return floor
    ec_key = key
    ecdsa = ec.ECDSA(hashes.SHA256())

    def floor_es() -> bytes:
        r, s = decode_dss_signature(ec_key.sign(signing_input, ecdsa))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return floor_es


def peer_issuers(alg: str, private_jwk: Mapping[str, Any]) -> dict[str, Callable[[], str]]:
    """Informational: the same claims minted by each peer (fresh iat/exp/jti every call)."""
    kid = private_jwk["kid"]
    header = {"alg": alg, "kid": kid, "typ": "at+jwt"}
    out: dict[str, Callable[[], str]] = {}

    import jwt

    py_key = private_key(private_jwk)
    out["PyJWT"] = lambda: jwt.encode(_claims(), py_key, algorithm=alg, headers=header)

    from joserfc import jwk as jf_jwk
    from joserfc import jwt as jf_jwt

    jf_key = jf_jwk.import_key(dict(private_jwk))
    out["joserfc"] = lambda: jf_jwt.encode(header, _claims(), jf_key, algorithms=[alg])

    from jwcrypto import jwk as jc_jwk
    from jwcrypto import jwt as jc_jwt

    jc_key = jc_jwk.JWK(**private_jwk)

    def jwcrypto_issue() -> str:
        token = jc_jwt.JWT(header=header, claims=_claims())
        token.make_signed_token(jc_key)
        return str(token.serialize())

    out["jwcrypto"] = jwcrypto_issue

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.jose import JsonWebKey, JsonWebToken

    al_key = JsonWebKey.import_key(dict(private_jwk))
    codec = JsonWebToken([alg])
    out["Authlib"] = lambda: codec.encode(header, _claims(), al_key).decode("ascii")
    return out


# --- sanity ---------------------------------------------------------------------------------


@dataclass
class Tokens:
    good: str
    bad: dict[str, str]


def make_tokens(alg: str) -> tuple[Any, Tokens]:
    from dojang.clock import FrozenClock
    from dojang.jose import KeySet
    from dojang.tokens import Issuer

    keyset = KeySet.generate(alg)
    issuer = Issuer(keyset, issuer=ISSUER)
    kwargs: dict[str, Any] = {"sub": SUB, "scope": SCOPE, "sid": SID, "client_id": CLIENT_ID}
    good = issuer.access_token(audience=AUDIENCE, **kwargs)
    h, p, s = good.split(".")
    mid = len(s) // 2
    flipped = s[:mid] + ("A" if s[mid] != "A" else "B") + s[mid + 1 :]
    claims = json.loads(_b64d(p))
    claims["scope"] = "orders:write"
    past = Issuer(keyset, issuer=ISSUER, clock=FrozenClock(time.time() - 3600))
    bad = {
        "tampered signature": f"{h}.{p}.{flipped}",
        "tampered payload": f"{h}.{_b64e(json.dumps(claims).encode())}.{s}",
        "wrong audience": issuer.access_token(audience="billing-api", **kwargs),
        "wrong issuer": Issuer(keyset, issuer="https://evil.example").access_token(
            audience=AUDIENCE, **kwargs
        ),
        "wrong typ (ott+jwt)": issuer.one_time_token(
            sub=SUB, purpose="reset", ttl=300, audience=AUDIENCE
        ),
        "expired": past.access_token(audience=AUDIENCE, **kwargs),
    }
    return keyset, Tokens(good, bad)


def _bind(verify: Verify, token: str) -> Callable[[], object]:
    def call() -> object:
        return verify(token)

    return call


def sanity_check(name: str, verify: Verify, tokens: Tokens) -> list[str]:
    """Raise if ``verify`` rejects the good token; return the bad tokens it wrongly accepts."""
    claims = verify(tokens.good)
    if claims["sub"] != SUB or claims["aud"] != AUDIENCE:
        raise AssertionError(f"{name}: accepted the token but returned wrong claims")
    accepted = []
    for label, token in tokens.bad.items():
        try:
            verify(token)
        except Exception:  # any rejection will do; we only need to know it was refused
            continue
        accepted.append(label)
    return accepted


# --- the benchmark --------------------------------------------------------------------------


def run_alg(alg: str, *, rounds: int, target_round_s: float) -> dict[str, Any]:
    with warnings.catch_warnings():
        _quiet_known_warnings()
        return _run_alg(alg, rounds=rounds, target_round_s=target_round_s)


def _run_alg(alg: str, *, rounds: int, target_round_s: float) -> dict[str, Any]:
    keyset, tokens = make_tokens(alg)
    jwks = keyset.public_jwks()
    jwk = jwks["keys"][0]
    token = tokens.good
    result: dict[str, Any] = {"alg": alg, "token_chars": len(token), "verify": {}, "issue": {}}
    problems: list[str] = []

    cases: list[Case] = [Case("floor", floor_verify(token, jwk))]
    verifiers: dict[str, Verify] = {"dojang": dojang_verifier(alg, jwks)}
    unsupported: dict[str, str] = {}
    for peer in PEERS:
        try:
            verifiers[peer] = PEER_FACTORIES[peer](alg, jwk)
            verifiers[peer](token)
        except Exception as exc:  # the peer cannot import the key or verify this alg
            unsupported[peer] = f"{type(exc).__name__}: {exc}"
            verifiers.pop(peer, None)
    for name, verify in verifiers.items():
        wrongly_accepted = sanity_check(name, verify, tokens)
        if wrongly_accepted:
            problems.append(f"{name} ({alg}) accepted: {', '.join(wrongly_accepted)}")
        cases.append(Case(name, _bind(verify, token)))
    cases.append(Case("minimal JWS (parse+verify, no claims)", minimal_jws(token, jwk)))
    cases.append(Case(OWN_WORK, _bind(own_work_verifier(alg, jwks), token)))
    with warnings.catch_warnings():
        _quiet_known_warnings()
        time_cases(cases, rounds=rounds, target_round_s=target_round_s)
    dojang_case = next(c for c in cases if c.name == "dojang")
    for case in cases:
        result["verify"][case.name] = case.record(cases[0], dojang_case)
    for peer, reason in unsupported.items():
        result["verify"][peer] = {"unsupported": reason}

    # Issuance.
    from dojang.tokens import Issuer

    issuer = Issuer(keyset, issuer=ISSUER)

    def issue() -> str:
        return issuer.access_token(
            sub=SUB, audience=AUDIENCE, scope=SCOPE, sid=SID, client_id=CLIENT_ID
        )

    sample = issue()
    signing_input = sample.rpartition(".")[0].encode("ascii")
    private_jwk = keyset.active.private_jwk()
    issue_cases = [
        Case("floor (raw sign)", floor_sign(signing_input, private_jwk)),
        Case("dojang", issue),
    ]
    try:
        for peer, fn in peer_issuers(alg, private_jwk).items():
            minted = fn()
            if verifiers["dojang"](minted)["sub"] != SUB:
                raise AssertionError(f"{peer} minted a token dojang does not accept")
            issue_cases.append(Case(peer, fn))
    except Exception as exc:  # informational rows only; record and go on
        problems.append(f"peer issuance ({alg}): {type(exc).__name__}: {exc}")
    with warnings.catch_warnings():
        _quiet_known_warnings()
        time_cases(issue_cases, rounds=rounds, target_round_s=target_round_s)
    for case in issue_cases:
        result["issue"][case.name] = case.record(issue_cases[0], issue_cases[1])
    result["signing_input_bytes"] = len(signing_input)
    result["problems"] = problems
    return result


def sizes(tokens: Mapping[str, int]) -> dict[str, Any]:
    """Bytes on the wire: a session cookie vs access tokens."""
    cookie_value = secrets.token_urlsafe(32)
    try:
        from dojang.server.cookies import CookiePolicy

        set_http = CookiePolicy(https=False).session_cookie(cookie_value)
        set_https = CookiePolicy(https=True).session_cookie(cookie_value)
    except ImportError:  # the server package is optional for this number
        set_http = f"dojang_session={cookie_value}; Path=/; HttpOnly; SameSite=Lax"
        set_https = f"__Host-dojang_session={cookie_value}; Path=/; HttpOnly; SameSite=Lax; Secure"
    out: dict[str, Any] = {
        "session_cookie_value_chars": len(cookie_value),
        "cookie_header_bytes (http: 'Cookie: dojang_session=<v>')": len(
            f"Cookie: dojang_session={cookie_value}"
        ),
        "cookie_header_bytes (https: 'Cookie: __Host-dojang_session=<v>')": len(
            f"Cookie: __Host-dojang_session={cookie_value}"
        ),
        "set_cookie_header_bytes (http)": len(f"Set-Cookie: {set_http}"),
        "set_cookie_header_bytes (https)": len(f"Set-Cookie: {set_https}"),
    }
    for alg, chars in tokens.items():
        out[f"access_token_chars ({alg})"] = chars
        out[f"authorization_header_bytes ({alg})"] = len("Authorization: Bearer ") + chars
    return out


def _target(
    metric: str, value: float | None, paired: float | None, target: str, ok: bool
) -> dict[str, Any]:
    return {"metric": metric, "value": value, "paired": paired, "target": target, "ok": ok}


def summarize(per_alg: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, judged on medians (paired-round ratios alongside)."""
    summary = []
    for res in per_alg:
        v, i, alg = res["verify"], res["issue"], res["alg"]
        d = v["dojang"]
        summary.append(
            _target(
                f"verify {alg}: dojang / floor",
                d["vs_floor"],
                d["vs_floor_paired"],
                f"<= {VERIFY_TARGET_VS_FLOOR}",
                d["vs_floor"] <= VERIFY_TARGET_VS_FLOOR,
            )
        )
        timed = [p for p in PEERS if "median_us" in v.get(p, {})]
        if timed:
            fastest = min(timed, key=lambda p: v[p]["median_us"])
            ratio = v[fastest]["vs_dojang"]
            summary.append(
                _target(
                    f"verify {alg}: fastest peer ({fastest}) / dojang",
                    ratio,
                    v[fastest]["vs_dojang_paired"],
                    "> 1 (dojang faster than every peer)",
                    ratio > 1,
                )
            )
        summary.append(
            _target(
                f"issue {alg}: dojang / raw signing",
                i["dojang"]["vs_floor"],
                i["dojang"]["vs_floor_paired"],
                f"<= {ISSUE_TARGET_VS_FLOOR}",
                i["dojang"]["vs_floor"] <= ISSUE_TARGET_VS_FLOOR,
            )
        )
    return summary


def run(*, rounds: int = 7, target_round_s: float = 0.3) -> dict[str, Any]:
    """Run the benchmark for every algorithm and return the raw result document."""
    per_alg = [run_alg(alg, rounds=rounds, target_round_s=target_round_s) for alg in ALGORITHMS]
    return {
        "benchmark": "verify",
        "machine": machine_info(),
        "method": (
            f"{rounds} interleaved rounds per case, N calls per round calibrated to "
            f"~{target_round_s}s, cases interleaved in 10 slices per round, GC off while "
            "timing (timeit style); median of rounds. "
            "'paired' = median over rounds of the per-round ratio (cases run back to back, "
            "so machine load mostly cancels)."
        ),
        "results": per_alg,
        "sizes": sizes({r["alg"]: r["token_chars"] for r in per_alg}),
        "summary": summarize(per_alg),
        "problems": [p for r in per_alg for p in r["problems"]],
        # A peer accepting a bad token is a finding; dojang accepting one fails the bench.
        "failed": any(p.startswith("dojang ") for r in per_alg for p in r["problems"]),
    }


def _timing_rows(rows: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    out = []
    for name, row in rows.items():
        if "unsupported" in row:
            out.append([name, "unsupported: " + row["unsupported"], "", "", "", "", ""])
            continue
        out.append(
            [
                name,
                fmt(row["median_us"]),
                fmt(row["best_us"]),
                fmt(row["vs_floor"]) + "x",
                fmt(row["vs_floor_paired"]) + "x",
                fmt(row["vs_dojang"]) + "x",
                fmt(row["vs_dojang_paired"]) + "x",
            ]
        )
    return out


_COLUMNS = ["median µs/op", "best µs/op", "vs floor", "(paired)", "vs dojang", "(paired)"]


def to_markdown(data: Mapping[str, Any]) -> str:
    """Readable tables for ``bench/results/verify.md``."""
    parts = [
        "# verify: access-token verification and issuance",
        "",
        "Same dojang access token (`typ: at+jwt`), full checks (signature, exp, iat/nbf, iss, "
        "aud, typ) in every library; typ is checked by the wrapper where the library has no "
        "option for it (timed). Floor: raw `cryptography` signature check of the signing input "
        "(ES256 includes R||S to DER). Issuance floor: raw signing of a same-size signing input "
        "(ES256 includes DER to R||S). Peer issuance rows are informational. joserfc 1.8 emits "
        "a SecurityWarning ('EdDSA is deprecated via RFC 9864', which prefers alg 'Ed25519') on "
        "every EdDSA call: hidden from output, but its cost is timed, as users would pay it. "
        "The row 'signature check stubbed' is dojang with a signature check that always says "
        "yes (informational): its parsing and claim checks timed alone. On some CPUs that work "
        "costs about twice as much right after a real signature check as alone (the "
        "signature's code and tables push the interpreter's out of the caches), which is the "
        "gap between 'dojang - floor' and that row. " + data["method"],
        "",
        machine_md(data["machine"]),
    ]
    for res in data["results"]:
        parts += [
            "",
            f"## verify {res['alg']} (token {res['token_chars']} chars)",
            "",
            md_table(["verifier", *_COLUMNS], _timing_rows(res["verify"])),
            "",
            f"## issue {res['alg']} (signing input {res['signing_input_bytes']} bytes)",
            "",
            md_table(["issuer", *_COLUMNS], _timing_rows(res["issue"])),
        ]
    parts += [
        "",
        "## sizes (sessions vs JWT)",
        "",
        md_table(["what", "bytes/chars"], data["sizes"].items()),
        "",
        "## vs targets",
        "",
        md_table(["metric", "median ratio", "paired ratio", "target", "met"], summary_rows(data)),
    ]
    if data["problems"]:
        parts += ["", "## problems", ""] + [f"- {p}" for p in data["problems"]]
    return "\n".join(parts)


def summary_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the targets table (shared with bench/results/README.md)."""
    return [
        [
            s["metric"],
            fmt(s["value"], 3) + "x",
            fmt(s["paired"], 3) + "x",
            s["target"],
            "yes" if s["ok"] else "**NO**",
        ]
        for s in data["summary"]
    ]

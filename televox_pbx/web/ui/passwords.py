"""The admin password, stored as a scrypt hash (hashlib, no extra dependency).

Format: scrypt$N$r$p$SALT_B64$HASH_B64. `python -m televox_pbx.web.ui.passwords` asks for a
password and prints the line for `dashboard.admin_password_hash`."""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os

_N, _R, _P, _LEN = 2**14, 8, 1, 32


def hash_password(password: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_LEN)
    return "$".join(("scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode("ascii"),
                     base64.b64encode(digest).decode("ascii")))


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches; a missing or malformed hash matches nothing."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                             n=int(n), r=int(r), p=int(p), dklen=len(expected),
                             maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def main() -> None:
    first = getpass.getpass("admin password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ")
    if len(first) < 8:
        raise SystemExit("use at least 8 characters")
    print(hash_password(first))


if __name__ == "__main__":
    main()

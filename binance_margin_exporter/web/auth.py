"""Basic auth against the bcrypt hashes of ``--web.config.file``, without a timing leak of
which user names exist.

bcrypt takes as long as its cost says (cost 4: about 1 ms, cost 10: about 50 ms), and the
cost is written in each user's hash. Checking an unknown name against one dummy hash would
answer in the dummy's time, which a user of another cost never does: the name would show as
unknown. So an unknown name is checked against a dummy hash of a cost drawn from the users'
own costs, in their proportions (a cost that three users in four have, three unknown names
in four get), and always the same one for the same name (a keyed hash of the name picks it,
keyed by a digest of the configured hashes: an attacker cannot compute it, and it stays the
same across restarts). Whatever a name answers in, users of that cost answer in it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping

import bcrypt

DEFAULT_COST = 10  # the dummy's cost when no user is configured (no check is made then)
CACHE_SIZE = 1000  # verified pairs remembered; more: forgotten all at once


def cost_of(hashed: bytes) -> int:
    """The cost of a bcrypt hash, ``$2b$<cost>$...``."""
    return int(hashed.split(b"$")[2])


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes.

    bcrypt is slow on purpose (tens of ms); a verified user:password pair is remembered as a
    keyed digest so that a scrape every few seconds does not pay for it each time.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {u: h.encode() for u, h in users.items()}
        # one entry per user: a cost is drawn for an unknown name as often as users have it
        self._costs = sorted(cost_of(h) for h in self._users.values()) or [DEFAULT_COST]
        self._dummies = {cost: bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=cost))
                         for cost in set(self._costs)}
        self._name_key = hashlib.sha256(b"\n".join(sorted(self._users.values()))).digest()
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def dummy_for(self, user: str) -> bytes:
        """The hash an unknown ``user`` is checked against: the same for the same name."""
        digest = hmac.new(self._name_key, user.encode(), hashlib.sha256).digest()
        return self._dummies[self._costs[int.from_bytes(digest[:8], "big") % len(self._costs)]]

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")  # the password may hold ':' itself
        if not sep:
            return False
        digest = hmac.new(self._key, decoded.encode(), hashlib.sha256).digest()
        with self._lock:
            if digest in self._verified:
                return True
        hashed = self._users.get(user)
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self.dummy_for(user))
        except ValueError:  # over bcrypt's 72 bytes: never a user's password
            return False
        ok = ok and hashed is not None
        if ok:
            with self._lock:
                if len(self._verified) >= CACHE_SIZE:
                    self._verified.clear()
                self._verified.add(digest)
        return ok

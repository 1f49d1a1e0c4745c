"""The rate state's key names its token one way, and slowly (security QA pass)."""

from __future__ import annotations

import hashlib
import re

from clonequeue.workers.limiter import token_id


def test_a_token_is_named_by_a_slow_salted_hash_not_a_fast_one() -> None:
    name = token_id("tok-known-prefix-1234")
    assert re.fullmatch(r"[0-9a-f]{16}", name)
    assert name == token_id("tok-known-prefix-1234")  # every worker finds the same state
    assert name != token_id("tok-known-prefix-1235")
    # the fast name it had: a guess could be confirmed against it at GPU speed
    fast = hashlib.sha256(b"clonequeue-rate\0tok-known-prefix-1234").hexdigest()[:16]
    assert name != fast
    slow = hashlib.scrypt(b"tok-known-prefix-1234", salt=b"clonequeue-rate", n=2**14, r=8, p=1)
    assert name == slow[:8].hex()

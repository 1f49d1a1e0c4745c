"""Tokens and balances. Tokens are only ever shown as a short fingerprint.

A token is an account: it has a balance that creates draw on and failed tasks are
refunded to. The simulator never echoes a token, so a test log or ledger dump can
be shared; ``fingerprint`` is what appears instead.
"""

from __future__ import annotations

import hashlib

_BEARER = "bearer "


def fingerprint(token: str) -> str:
    """``sha256(token)[:12]``: enough to tell accounts apart, useless to an attacker."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class Accounts:
    """Balances keyed by token fingerprint; money is rounded to 6 decimals."""

    def __init__(self, tokens: tuple[str, ...], initial_balance: float) -> None:
        self._by_token = {token: fingerprint(token) for token in tokens}
        self.balances = dict.fromkeys(self._by_token.values(), initial_balance)

    def authenticate(self, authorization: str | None) -> str | None:
        """The account of an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization or authorization[:7].lower() != _BEARER:
            return None
        return self._by_token.get(authorization[7:].strip())

    def can_pay(self, account: str, amount: float) -> bool:
        return self.balances[account] + 1e-9 >= amount

    def charge(self, account: str, amount: float) -> None:
        self.balances[account] = round(self.balances[account] - amount, 6)

    def credit(self, account: str, amount: float) -> None:
        self.balances[account] = round(self.balances[account] + amount, 6)

    def set_balance(self, token: str, balance: float) -> str:
        """Top up (or set) a token's balance; an unknown token becomes a new account."""
        account = self._by_token.setdefault(token, fingerprint(token))
        self.balances[account] = round(balance, 6)
        return account

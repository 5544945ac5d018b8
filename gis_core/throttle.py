"""Login throttling: failed logins per address and per account, kept in the database.

Every password check costs an Argon2 hash (tens of milliseconds of CPU, by design), so an
unthrottled login is a way to exhaust the API's CPU as well as to guess passwords. Each key
(``addr:<address>``, ``user:<name>``) gets ``free_failures`` failures; each one after locks
the key for ``first_lock_s`` (1 s), then twice as long each time, up to ``lockout_s``:
guessing is slowed, then refused for a while. A locked key is refused before any hashing.
Failures further apart than ``window_s`` start the count afresh, and a successful login
clears its account's count (not its address's: one valid account must not reset a
guesser's address). The rows live in ``auth.login_throttle`` so that every API process
behind a balancer sees the same counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import psycopg

from gis_core.settings import AuthSettings


class ThrottleError(ValueError):
    """A throttle asked something meaningless (a negative failure count, no key)."""


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 5
    window_s: float = 900.0
    lockout_s: float = 900.0
    first_lock_s: float = 1.0

    @classmethod
    def of(cls, auth: AuthSettings) -> ThrottlePolicy:
        return cls(
            auth.throttle_free_failures,
            auth.throttle_window_s,
            auth.throttle_lockout_s,
            auth.throttle_first_lock_s,
        )

    def lock_seconds(self, failures: np.ndarray) -> np.ndarray:
        """How long each key is locked after its ``failures``-th failure in a row.

        >>> ThrottlePolicy(free_failures=5, lockout_s=900).lock_seconds(np.array([5, 6, 7, 16]))
        array([  0.,   1.,   2., 900.])
        """
        failures = np.asarray(failures)
        if (failures < 0).any():
            raise ThrottleError(f"a failure count cannot be negative: {failures.min()}")
        beyond = failures - self.free_failures
        # Clipped before the power, so a long-running guesser cannot overflow it.
        locks = self.first_lock_s * np.exp2(np.clip(beyond - 1, 0, 62).astype(float))
        return np.where(beyond > 0, np.minimum(locks, self.lockout_s), 0.0)


def throttle_keys(address: str | None, username: str) -> list[str]:
    """The keys one attempt counts against: its address (when known) and the account named.
    The account key does not depend on whether the account exists (no telling who does)."""
    keys = [f"user:{username.strip().casefold()[:64]}"]
    if address:
        keys.insert(0, f"addr:{address}")
    return keys


def retry_after(conn: psycopg.Connection, keys: list[str]) -> int:
    """Whole seconds until every key is unlocked; 0 when none is locked."""
    if not keys:
        raise ThrottleError("a login is throttled by at least one key")
    row = conn.execute(
        """
        SELECT max(extract(epoch FROM blocked_until - now()))
        FROM auth.login_throttle WHERE key = ANY(%s) AND blocked_until > now()
        """,
        (keys,),
    ).fetchone()
    return math.ceil(row[0]) if row and row[0] is not None else 0


def record_failure(conn: psycopg.Connection, keys: list[str], policy: ThrottlePolicy) -> int:
    """Count a failed login against ``keys``; return the seconds the longest lock lasts.

    Times are the clock's, not the transaction's ``now()``: the transaction began before the
    password was hashed, and a lock must run from the failure, not from before it.
    """
    if not keys:
        raise ThrottleError("a login is throttled by at least one key")
    counted = conn.execute(
        """
        INSERT INTO auth.login_throttle AS t (key, failures, first_failure_at, last_failure_at)
        SELECT k, 1, clock_timestamp(), clock_timestamp() FROM unnest(%(keys)s::text[]) AS k
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE
                WHEN t.last_failure_at < clock_timestamp() - make_interval(secs => %(window)s)
                THEN 1 ELSE t.failures + 1 END,
            first_failure_at = CASE
                WHEN t.last_failure_at < clock_timestamp() - make_interval(secs => %(window)s)
                THEN clock_timestamp() ELSE t.first_failure_at END,
            last_failure_at = clock_timestamp()
        RETURNING key, failures
        """,
        {"keys": keys, "window": policy.window_s},
    ).fetchall()
    locked_keys = [key for key, _ in counted]
    locks = policy.lock_seconds(np.array([failures for _, failures in counted]))
    conn.execute(
        """
        UPDATE auth.login_throttle t
        SET blocked_until = clock_timestamp() + make_interval(secs => v.lock)
        FROM unnest(%s::text[], %s::float8[]) AS v(key, lock)
        WHERE t.key = v.key AND v.lock > 0
        """,
        (locked_keys, locks.tolist()),
    )
    # Old rows go as failures come: bounded work, and only when someone is failing.
    conn.execute(
        """
        DELETE FROM auth.login_throttle WHERE key IN (
            SELECT key FROM auth.login_throttle
            WHERE last_failure_at < now() - make_interval(secs => %s)
              AND coalesce(blocked_until, '-infinity') < now()
            LIMIT 1000)
        """,
        (policy.window_s,),
    )
    return math.ceil(float(locks.max())) if len(locks) else 0


def clear_account(conn: psycopg.Connection, username: str) -> None:
    """A successful login: its account starts afresh."""
    conn.execute(
        "DELETE FROM auth.login_throttle WHERE key = %s", (throttle_keys(None, username)[0],)
    )

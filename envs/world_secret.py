"""World secrets: what a synthetic world's hidden parts (benchmarks, pool labels) are drawn from.

A world built from public code and a public seed can be rebuilt by anyone who reads the code. With
a secret (``CURBENCH_WORLD_SECRET``), the hidden parts are drawn from seed material derived from
it, and only a public *id* of the secret enters configs and cache keys. Everyone who shares the
secret builds the same world; without one, the public reference world is built, with the same
fingerprint as before secrets existed.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

ENV_VAR = "CURBENCH_WORLD_SECRET"


def secret_id(secret: str) -> str:
    """A public name of a world secret: tells worlds apart, says nothing of the seeds."""
    return hashlib.sha256(f"curbench-world-id:{secret}".encode()).hexdigest()[:16]


def secret_seed(secret: str | None) -> list[int]:
    """Seed material from the secret (none for the public world), to append to a generator's seed."""
    if not secret:
        return []
    digest = hashlib.sha256(f"curbench-world-seed:{secret}".encode()).digest()
    return [int.from_bytes(digest[k:k + 4], "little") for k in range(0, 16, 4)]


def check_secret(secret: str | None, expected_id: str) -> None:
    """Refuse to build a world with a secret other than the one its config names."""
    if (secret_id(secret) if secret else "") != expected_id:
        raise ValueError("the world secret does not match the world's secret_id")


def public_fields(config: Any) -> dict[str, Any]:
    """A world config as plain data for its fingerprint: an empty ``secret_id`` is left out, so the
    public world keeps the fingerprint it had before secrets existed."""
    data = asdict(config)
    if not data.get("secret_id"):
        data.pop("secret_id", None)
    return data

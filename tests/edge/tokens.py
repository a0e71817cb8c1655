"""HS256 tokens as CONTRACT.md §3 describes them, minted with PyJWT (independent of the code under test)."""

from __future__ import annotations

import time

import jwt


def workspace_token(secret: str, workspace_id: str, ttl_s: int = 600) -> str:
    return jwt.encode({"workspace_id": workspace_id, "exp": int(time.time()) + ttl_s}, secret, algorithm="HS256")


def service_key_for(secret: str) -> str:
    """The service key the test hosts run with beside `secret` (CONTRACT §3: never the workspace key itself)."""
    return "service-key-of-" + secret


def service_token(secret: str, ttl_s: int = 600) -> str:
    """A service token for a host whose workspace key is `secret`: signed with its service key."""
    claims = {"role": "service", "exp": int(time.time()) + ttl_s}
    return jwt.encode(claims, service_key_for(secret), algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

"""Twilio's request signature (X-Twilio-Signature), the way its helper libraries compute and check it:
base64(HMAC-SHA1(auth_token, url + concatenation of key + value over the form parameters sorted by key)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping


def twilio_signature(url: str, params: Mapping[str, str], auth_token: str) -> str:
    payload = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()

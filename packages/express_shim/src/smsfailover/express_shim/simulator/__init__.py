"""A local stand-in for Twilio's Messages API, with a test API for what it received and for injected faults.

    python -m smsfailover.express_shim.simulator --port 8025

Twilio routes (HTTP Basic auth with TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN):
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json         create (form: To, From | MessagingServiceSid,
                                                                  Body, MediaUrl..., StatusCallback)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json         list: To, From, DateSent, DateSent<, DateSent>,
                                                                  PageSize, Page, PageToken (see listing.py)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch
Test routes (no auth; the simulator only listens on loopback):
    GET | DELETE /_sim/messages          what was received, with counts per To+Body and a duplicates figure
    GET | POST | DELETE /_sim/faults     see smsfailover.express_shim.simulator.faults
"""

from __future__ import annotations

from smsfailover.express_shim.simulator.app import create_app
from smsfailover.express_shim.simulator.config import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app"]

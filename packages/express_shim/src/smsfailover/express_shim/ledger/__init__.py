"""The origin's side of the idempotency ledger (DESIGN.md, "Ledger authority"); core's ledger.py is the seam.

origin_ledger.py   OriginLedger: one send's claim, local first, then the edge while it may accept sends
detector.py        EdgeLedgerDetector: degraded mode (no ledger round trip anywhere for the budget) or not
liveness.py        LedgerLiveness: the round that decides it, apart from requests, shared through the database
remote_store.py    EdgeLedger: the edge's service ledger routes, fenced by message id
queue.py           EdgeLedgerQueue: pushes and releases the edge has not taken yet
reconcile.py       Reconciler: drains the queue, counts every double send (DoubleSends)
switch.py          FailoverSwitch: the two-phase enable and disable
"""

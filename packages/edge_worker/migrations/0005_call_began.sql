-- The call-began mark (issue 15): written just before the provider call, refused once the claim's lease has passed.
-- A claim from before this migration reads -1 ("not recorded"): never taken for one whose call never began.
-- The same statements as core's CALL_BEGAN_UPGRADE (tests/edge/test_migrations.py checks that).
ALTER TABLE idempotency_ledger ADD COLUMN call_began_at INTEGER;
UPDATE idempotency_ledger SET call_began_at = -1 WHERE state = 'claimed';
CREATE INDEX IF NOT EXISTS idempotency_ledger_open ON idempotency_ledger (state, lease_expires_at);

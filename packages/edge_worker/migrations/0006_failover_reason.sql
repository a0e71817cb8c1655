-- Why the router sent each message here (core/failover_reason.py): the X-Smsfailover-Failover-Reason header of its
-- POST, checked against a fixed vocabulary (anything else is stored as 'other'), written in the same D1 batch as the
-- row (send_ledger.py); NULL when the POST gave none. The sync feed carries it to the origin's failover events.
ALTER TABLE messages ADD COLUMN failover_reason TEXT;

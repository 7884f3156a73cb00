-- The change feed in commit order (issue 23). Gateways read `changes` with `WHERE seq > last`, so a
-- transaction that drew its seq before another but committed after it would be skipped for good:
-- a lost revocation. Every insert into `changes` (from any writer: a gateway, the CLI, psql) now
-- first takes a transaction-scoped advisory lock, one per schema, and only then draws its seq.
-- The lock is released when the transaction ends, after its rows are visible, so the next writer
-- draws a larger number strictly after this one committed (or rolled back): a reader that sees seq
-- N has already seen every committed seq below N. The cost is that change-writing transactions
-- commit one at a time per schema; each takes the lock at its last statement, just before COMMIT.
CREATE FUNCTION gateway_order_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- 0x67776368 ("gwch"): the gateway's change-log lock class; the schema picks the instance.
    PERFORM pg_advisory_xact_lock(1735877480, hashtext(TG_TABLE_SCHEMA));
    NEW.seq := nextval(pg_get_serial_sequence(format('%I.changes', TG_TABLE_SCHEMA), 'seq'));
    RETURN NEW;
END
$$;

-- The column default would draw a number before the trigger runs (before the lock): drop it.
ALTER TABLE changes ALTER COLUMN seq DROP DEFAULT;

CREATE TRIGGER changes_order BEFORE INSERT ON changes
    FOR EACH ROW EXECUTE FUNCTION gateway_order_change();
-- Even for sessions with session_replication_role = replica (which skip ordinary triggers, such as
-- the NOTIFY one): without it their rows would get no seq at all.
ALTER TABLE changes ENABLE ALWAYS TRIGGER changes_order;

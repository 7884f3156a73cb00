-- Every change-feed insert notifies listening gateways in the same transaction (delivered at
-- commit). The payload names the schema so gateways sharing a database but not a schema ignore
-- each other's notifications; a listener only uses it as a wake-up and then reads `changes`.
CREATE FUNCTION gateway_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_changes', TG_TABLE_SCHEMA || ':' || NEW.seq::text);
    RETURN NEW;
END
$$;

CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH ROW EXECUTE FUNCTION gateway_notify_change();

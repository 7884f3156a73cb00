-- Single-use values (dashboard sign-in link ids): a row means "already used" until it expires.
CREATE TABLE used_nonces (
    nonce       TEXT PRIMARY KEY,
    expires_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX used_nonces_expiry ON used_nonces(expires_at);

-- OAuth 2.0 authorization server; mirrors sqlite/0002_oauth.sql. Secrets, codes and refresh tokens
-- are kept only as SHA-256 digests; access tokens are ordinary rows of `tokens` (kind
-- oauth_access, client_id, grant_id) so the existing lookup, cache and revocation path serves them.
-- Times are Unix epoch seconds (double precision), as in 0001.
CREATE TABLE oauth_clients (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    secret_hash    TEXT,
    redirect_uris  TEXT[] NOT NULL,
    scopes         TEXT[] NOT NULL,
    workspace_id   TEXT,
    created_at     DOUBLE PRECISION NOT NULL
);

-- One row per approved consent: the "family" every code, access and refresh token hangs from.
CREATE TABLE oauth_grants (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    scopes         TEXT[] NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL,
    revoked_at     DOUBLE PRECISION,
    revoke_reason  TEXT
);
CREATE INDEX oauth_grants_user ON oauth_grants(user_id, workspace_id);
CREATE INDEX oauth_grants_client ON oauth_grants(client_id);

CREATE TABLE oauth_codes (
    hash                   TEXT PRIMARY KEY,
    grant_id               TEXT NOT NULL REFERENCES oauth_grants(id),
    client_id              TEXT NOT NULL,
    redirect_uri           TEXT NOT NULL,
    code_challenge         TEXT NOT NULL,
    code_challenge_method  TEXT NOT NULL,
    created_at             DOUBLE PRECISION NOT NULL,
    expires_at             DOUBLE PRECISION NOT NULL,
    used_at                DOUBLE PRECISION
);

CREATE TABLE oauth_refresh_tokens (
    id               TEXT PRIMARY KEY,
    hash             TEXT NOT NULL UNIQUE,
    grant_id         TEXT NOT NULL REFERENCES oauth_grants(id),
    client_id        TEXT NOT NULL,
    access_token_id  TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    expires_at       DOUBLE PRECISION NOT NULL,
    rotated_at       DOUBLE PRECISION,
    replaced_by      TEXT,
    revoked_at       DOUBLE PRECISION
);
CREATE INDEX oauth_refresh_grant ON oauth_refresh_tokens(grant_id);
CREATE INDEX tokens_grant ON tokens(grant_id);

-- Initial PostgreSQL schema; mirrors sqlite/0001_init.sql. Timestamps are Unix epoch seconds
-- (double precision) so both backends hand the gateway the same floats.
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT 'free',
    created_at  DOUBLE PRECISION NOT NULL,
    deleted_at  DOUBLE PRECISION
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE memberships (
    user_id       TEXT NOT NULL REFERENCES users(id),
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    role          TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    type_prefix     TEXT NOT NULL,
    environment     TEXT NOT NULL,
    visible_prefix  TEXT NOT NULL,
    scopes          TEXT[] NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    user_id         TEXT REFERENCES users(id),
    created_at      DOUBLE PRECISION NOT NULL,
    expires_at      DOUBLE PRECISION,
    revoked_at      DOUBLE PRECISION,
    last_used_at    DOUBLE PRECISION,
    allowed_domains TEXT[] NOT NULL DEFAULT '{}',
    created_by      TEXT,
    client_id       TEXT,
    grant_id        TEXT
);
CREATE INDEX tokens_workspace ON tokens(workspace_id);
CREATE INDEX tokens_user ON tokens(user_id);

-- One row per live secret of a token: rotation adds a row and gives the old one a not_after.
CREATE TABLE token_secrets (
    hash        TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES tokens(id),
    not_after   DOUBLE PRECISION
);
CREATE INDEX token_secrets_token ON token_secrets(token_id);

-- The change feed every gateway resyncs from; inserts also NOTIFY (see 0002) for sub-second reach.
CREATE TABLE changes (
    seq        BIGSERIAL PRIMARY KEY,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    at         DOUBLE PRECISION NOT NULL
);

CREATE TABLE audit_log (
    id              BIGSERIAL PRIMARY KEY,
    at              DOUBLE PRECISION NOT NULL,
    action          TEXT NOT NULL,
    actor           TEXT,
    address         TEXT,
    token_id        TEXT,
    visible_prefix  TEXT,
    workspace_id    TEXT,
    detail          TEXT
);
CREATE INDEX audit_workspace ON audit_log(workspace_id, id);

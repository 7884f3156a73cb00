-- Initial schema. Timestamps are Unix epoch seconds (REAL); JSON columns hold lists of strings.
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT 'free',
    created_at  REAL NOT NULL,
    deleted_at  REAL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  REAL NOT NULL
);

CREATE TABLE memberships (
    user_id       TEXT NOT NULL REFERENCES users(id),
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    role          TEXT NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    type_prefix     TEXT NOT NULL,
    environment     TEXT NOT NULL,
    visible_prefix  TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    user_id         TEXT REFERENCES users(id),
    created_at      REAL NOT NULL,
    expires_at      REAL,
    revoked_at      REAL,
    last_used_at    REAL,
    allowed_domains TEXT NOT NULL DEFAULT '[]',
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
    not_after   REAL
) WITHOUT ROWID;
CREATE INDEX token_secrets_token ON token_secrets(token_id);

-- The change feed running gateways poll to invalidate their caches.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    at         REAL NOT NULL
);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              REAL NOT NULL,
    action          TEXT NOT NULL,
    actor           TEXT,
    address         TEXT,
    token_id        TEXT,
    visible_prefix  TEXT,
    workspace_id    TEXT,
    detail          TEXT
);
CREATE INDEX audit_workspace ON audit_log(workspace_id, id);

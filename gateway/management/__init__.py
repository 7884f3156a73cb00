"""Managing workspaces, users, members and tokens: the one service layer (:mod:`.services`) behind
the CLI, the admin API (:mod:`.adminapi`) and the dashboard; the request bodies (:mod:`.bodies`) and
the OpenAPI document generated from them (:mod:`.openapi`)."""

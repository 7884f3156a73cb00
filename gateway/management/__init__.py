"""Managing workspaces, users, members and tokens: the one service layer behind the CLI, the admin
API (:mod:`.adminapi`) and the dashboard (:class:`~gateway.management.services.Services`, built on
workspaces, users and members in :mod:`.directory`, audit entries and views in :mod:`.audit`); the
request bodies (:mod:`.bodies`) and the OpenAPI document generated from them (:mod:`.openapi`)."""

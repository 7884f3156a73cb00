"""The config the core end-to-end tests run: a protected API beside a public route."""

CORE = """
store: "{store}"
token_types:
  - {name: live, prefix: gw_live_, kind: api_key, environment: live}
  - {name: test, prefix: gw_test_, kind: api_key, environment: test}
  - {name: pat, prefix: gw_pat_, kind: pat, inherit_user_permissions: true}
  - name: header
    prefix: hk_
    kind: workspace_key
    credential: {header: X-Api-Key}
workspace:
  source: header
  header: X-Workspace-Id
  match: any
  required: false
  pattern: "[a-z0-9_A-Z-]+"
upstreams:
  api:
    url: "{up}"
    environments: {live: "{up}", test: "{sandbox}"}
    timeout: {timeout}
    connect_timeout: 2
scopes:
  known: [items:read, items:write, reports:read, admin:all]
  implies: {items:write: [items:read]}
roles:
  owner: [admin:all]
  member: [items:read, items:write]
  viewer: [items:read]
trusted_proxies: [{trusted}]
cache: {poll_interval: 0.1, usage_flush_interval: 0.2}
routes:
  - {name: public, path: /public/**, public: true}
  - {name: items-read, path: /api/items/**, methods: [GET, HEAD], scopes: [items:read]}
  - {name: items-write, path: /api/items/**, methods: [POST, PUT, PATCH, DELETE], scopes: [items:write]}
  - {name: admin, path: /admin/**, scopes: [admin:all]}
  - {name: admin-exact, path: /admin, scopes: [admin:all]}
  - name: reports
    path: /reports/{id}
    scopes: {any_of: [reports:read, admin:all]}
  - {name: both, path: /both, scopes: {all_of: [items:read, reports:read]}}
  - {name: svc, path: /svc/**, strip_prefix: /svc, add_prefix: /internal, scopes: [items:read]}
  - {name: keep, path: /keep/**, keep_credential: true, scopes: [items:read]}
  - {name: ws, path: /ws, scopes: [items:read]}
"""

"""After the pipeline allows: the request goes upstream (:mod:`.proxy`), over pooled keep-alive
connections (:mod:`.upstream`), to one of several targets (:mod:`.balancer`), or as a WebSocket."""

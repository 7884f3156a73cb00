"""The proxy listener up to the pipeline and back out: sockets and the strict parser (:mod:`.listen`),
TLS, the catch-all resource, request deadlines, which headers pass (:mod:`.headerpolicy`), how a
refusal is rendered (:mod:`.responses`), what wraps every request (:mod:`.wrap`: errors → JSON,
observers), the access line (:mod:`.accesslog`), and the listener apps (:mod:`.apps`)."""

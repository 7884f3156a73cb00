"""The proxy listener up to the pipeline and back out: sockets and the strict parser (:mod:`.listen`),
TLS, the catch-all resource, request deadlines, which headers pass (:mod:`.headerpolicy`), and how a
refusal is rendered (:mod:`.responses`)."""

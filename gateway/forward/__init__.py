"""After the pipeline allows: the request goes upstream and the answer comes back.

:mod:`.proxy` (the :class:`~gateway.forward.proxy.Forwarder`: caps, target choice, timeouts) builds
on :mod:`.headers` (the upstream request's headers), :mod:`.body` (request bodies and ``Expect``),
:mod:`.relay` (the response back) and :mod:`.failures` (why an exchange failed); it talks over
pooled keep-alive connections (:mod:`.upstream`) or the shared client (:mod:`.client`), to one of
several targets (:mod:`.balancer`), or as a WebSocket (:mod:`.websocket`).
"""

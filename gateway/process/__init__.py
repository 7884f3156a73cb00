"""The process around the gateway: workers on one port (:mod:`.server`), reload on SIGHUP or file
change (:mod:`.reload`), and the one-command demo (:mod:`.demo`)."""

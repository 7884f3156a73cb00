"""The request pipeline, one step per module; :mod:`gateway.pipeline.run` calls them in order. It also
holds the one authorization decision every door asks (:mod:`.authz`), the hook points features fill
(:mod:`.hooks`) and the cache-hit memo (:mod:`.memo`)."""

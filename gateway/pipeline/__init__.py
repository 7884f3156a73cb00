"""The request pipeline, one step per module; :mod:`gateway.pipeline.run` calls them in order."""

"""The admin API on the admin listener (see :mod:`gateway.admin.api`)."""

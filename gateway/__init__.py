"""An aiohttp API gateway that enforces SaaS-grade token auth in front of existing services."""

__version__ = "0.1.0"

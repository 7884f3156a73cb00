"""One clear log line when a store write fails because the disk is full (issue 23).

A full disk otherwise shows only as 503 ``STORE_UNAVAILABLE`` on writes while reads keep serving,
which looks like an outage of the database. Each backend tells :class:`DiskFullLog` about a write
that failed for that reason (SQLite's "database or disk is full", PostgreSQL's ``53100
disk_full``) and about writes that succeed: the first failure of an episode is logged at ERROR,
saying the disk is full, and the first success after it says writes work again.
"""

from __future__ import annotations

import logging

__all__ = ["DiskFullLog"]

log = logging.getLogger("gateway.store")


class DiskFullLog:
    def __init__(self, where: str) -> None:
        self.where = where
        self.full = False

    def failed(self, detail: str) -> None:
        if not self.full:
            self.full = True
            log.error(
                "the disk is full: the %s store cannot write (%s); writes get 503 "
                "STORE_UNAVAILABLE until space is freed, reads keep serving",
                self.where,
                detail,
            )

    def wrote(self) -> None:
        if self.full:
            self.full = False
            log.warning("the %s store can write again (disk space was freed)", self.where)

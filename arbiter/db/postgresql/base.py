"""Django's PostgreSQL backend with a health check that costs no round trip.

``CONN_HEALTH_CHECKS`` makes Django check a kept connection before each request's first
query, so that one the server closed (a restart, a failover, an idle timeout) is replaced
instead of failing the request. Django checks with ``SELECT 1``: a round trip on every
request, about a tenth of a real-time decision's waiting. A server that closes a
connection says so on its socket (its goodbye message, then end of file), so an idle
connection whose socket has nothing to read is alive as far as a query could tell;
only when there is something to read does this backend run Django's check, which reads
it and closes the connection if it is dead.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


def _socket_quiet(connection: object) -> bool:
    """Nothing waiting on the idle connection's socket (no goodbye, no end of file)."""
    import psycopg

    if connection.closed or connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError, psycopg.Error):
        return False


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not _socket_quiet(self.connection) and not self.is_usable():
            self.close()
        self.health_check_done = True

"""Which Label Studio server a command talks to: the environment's, a client's instance on the hub, or the local one.

Its own module because it reads both :mod:`kdh_ai.labelstudio.server` (a local server) and
:mod:`kdh_ai.labelstudio.hub` (a client's instance), and the hub runs servers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kdh_ai.labelstudio.client import Connection
from kdh_ai.labelstudio.hub import Hub, job_client
from kdh_ai.labelstudio.server import NoServerError, env_connection, local_connection

__all__ = ["resolve_connection"]

logger = logging.getLogger(__name__)


def resolve_connection(data_dir: Path | None = None, *, job_dir: str | Path | None = None,
                       client: str | None = None) -> Connection:
    """The server to talk to: ``KDH_LS_URL`` + ``KDH_LS_TOKEN`` when set, else the client's instance on the hub
    (``client``, or the one the job records in ``job.json``), else the local server.

    An explicit ``KDH_LS_URL`` wins over the job's client, with a warning that says so. A remote URL that is in
    fact a local server kdh runs (same port on this machine) keeps local-files audio; any other is treated as
    remote (audio by upload).

    Raises:
        ServerError: None is available (the message says how to get one).
    """
    if client is None and job_dir is not None:
        client = job_client(job_dir)
    hub_data_dir = Hub().data_dir(client) if client is not None else None
    remote = env_connection(hub_data_dir or data_dir)
    if remote is not None:
        if client is not None:
            logger.warning("KDH_LS_URL is set, so kdh uses %s and not the instance of client %r that the job "
                           "records; unset KDH_LS_URL and KDH_LS_TOKEN to use the client's instance", remote.url,
                           client)
        return remote
    if client is not None:
        return Hub().connection(client)
    local = local_connection(data_dir)
    if local is None:
        raise NoServerError("no Label Studio server: start one with `kdh labelstudio start`, or set KDH_LS_URL and "
                            "KDH_LS_TOKEN to use the hub's central server")
    return local

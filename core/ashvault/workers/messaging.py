"""The message bus: oslo.messaging, imported only when ``ashvault_transport_url`` is set.

oslo.messaging reads its own options (``[oslo_messaging_rabbit]``, ...) from oslo's global configuration object,
built from the same files as ashvault's own, so its own ``transport_url`` option never meets ours.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from oslo_config import cfg

from ashvault import exceptions

TOPIC = "ashvault-backup"
"""Every worker listens on this topic (any worker runs the job) and on ``TOPIC.<host>`` (only that host's)."""


def _messaging() -> Any:
    # eventlet (which oslo.messaging imports) warns on import, and its DNS module alone takes most of a second.
    os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
    for name in ("oslo_messaging", "oslo_service"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import oslo_messaging
            import oslo_messaging.opts
    except ImportError as exc:
        raise exceptions.ConfigurationError(
            reason="ashvault_transport_url is set but oslo.messaging is missing (pip install 'ashvault[rpc]')"
        ) from exc
    return oslo_messaging


def messaging_conf(conf: cfg.ConfigOpts, pool: int) -> cfg.ConfigOpts:
    """oslo.messaging's configuration, read from ``conf``'s files; ``pool`` jobs at most taken off the bus at once.

    It is oslo's global one: some of oslo.messaging's options are registered nowhere else.
    """
    om = _messaging()
    mconf = cfg.CONF
    mconf([], project="ashvault", default_config_files=list(conf.config_file or []))
    for group, opts in om.opts.list_opts():
        mconf.register_opts(list(opts), group=group)
    mconf.set_override("executor_thread_pool_size", pool)
    mconf.set_override("rabbit_qos_prefetch_count", pool, group="oslo_messaging_rabbit")
    return mconf


def transport(conf: cfg.ConfigOpts, pool: int = 8) -> Any:
    om = _messaging()
    try:
        return om.get_rpc_transport(messaging_conf(conf, pool), url=conf.ashvault_transport_url)
    except (om.InvalidTransportURL, om.DriverLoadFailure) as exc:
        raise exceptions.ConfigurationError(
            reason=f"ashvault_transport_url is not usable: {type(exc).__name__}"
        ) from exc


class Sender:
    """Casts ``run_job`` to the workers: to one host's when ``host`` is given, else to any."""

    def __init__(self, transport: Any) -> None:
        om = _messaging()
        self._om = om
        self._client = om.get_rpc_client(transport, om.Target(topic=TOPIC))

    def cast(self, job_id: str, host: str | None) -> bool:
        """Send; False (the catalog's re-send will retry) when the bus cannot take it now."""
        client = self._client.prepare(server=host, retry=1) if host else self._client.prepare(retry=1)
        try:
            client.cast({}, "run_job", job_id=job_id)
        except self._om.MessageDeliveryFailure as exc:
            logging.getLogger(__name__).warning("job %s: not sent now (%s); a worker sends it again later",
                                                job_id, type(exc).__name__)
            return False
        return True

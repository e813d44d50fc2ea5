"""Insider One as the destination of a run (the protocols of ``reverse_etl.run.destination``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from reverse_etl.insider.config import InsiderDestinationConfig, SyncConfig
from reverse_etl.insider.http.endpoints import Endpoint
from reverse_etl.insider.http.results import BatchResult, DeliveryStats
from reverse_etl.insider.modes import Mode, mode_for
from reverse_etl.run.destination import BatchOutcome, Chunks, Lane, SyncSpec


class InsiderDeliverer(Protocol):
    """What sends to Insider: :class:`~reverse_etl.insider.http.InsiderClient` or a stand-in."""

    def deliver(self, endpoint: Endpoint, chunks: Chunks, *, on_result: Callable[[BatchResult], None],
                skip_hook: bool = False, halt_on_reject: bool = False,
                progress: Callable[[int], None] | None = None) -> DeliveryStats: ...


ClientFactory = Callable[[InsiderDestinationConfig], InsiderDeliverer]


class InsiderSender:
    """A client bound to one sync's delivery options (data stream hook, halting)."""

    def __init__(self, client: InsiderDeliverer, sync: SyncConfig) -> None:
        self.client = client
        self.skip_hook = not sync.options.trigger_data_stream
        self.halt_on_reject = not sync.options.skip_invalid_records

    def deliver(self, lane: Lane, chunks: Chunks, *, on_result: Callable[[BatchOutcome], None],
                progress: Callable[[int], None] | None = None) -> DeliveryStats:
        """Send ``chunks`` to the endpoint ``lane`` names."""
        endpoint = lane if isinstance(lane, Endpoint) else Endpoint[lane.name]
        return self.client.deliver(endpoint, chunks, on_result=on_result, skip_hook=self.skip_hook,
                                   halt_on_reject=self.halt_on_reject, progress=progress)


def _default_client(config: InsiderDestinationConfig) -> InsiderDeliverer:
    from reverse_etl.insider.http import InsiderClient

    return InsiderClient(config)


class InsiderDestination:
    """Insider One, as a project's ``destination:`` section configures it."""

    def __init__(self, config: InsiderDestinationConfig, client_factory: ClientFactory | None = None) -> None:
        self.config = config
        self.client_factory = client_factory or _default_client

    def mode_for(self, sync: SyncSpec) -> Mode:
        """The mode that turns ``sync``'s rows into Insider operations."""
        assert isinstance(sync, SyncConfig), "Insider syncs are configured by insider.config.SyncConfig"
        return mode_for(sync, self.config)

    def sender(self, sync: SyncSpec) -> InsiderSender:
        """A client for ``sync``'s operations."""
        assert isinstance(sync, SyncConfig), "Insider syncs are configured by insider.config.SyncConfig"
        return InsiderSender(self.client_factory(self.config), sync)

    def identity(self) -> dict[str, str]:
        """Partner and base URLs: a different one is a different Insider (never the secret key)."""
        return {"partner": self.config.partner, "api_base_url": self.config.api_base_url,
                "fps_base_url": self.config.fps_base_url}

"""The network port of the services, implemented on the network tables (see ``network_repository``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gridbridge.domain.network import NetworkModel
from gridbridge.services.ports import ConnectionPointRef
from gridbridge.store import network_repository as repo


class SqlNetworks:
    """Stored network models per T-D interface, and their connection points."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def save(self, tdi_id: str, model: NetworkModel, *, source: str, replace: bool) -> int:
        return repo.save_network(self.session, tdi_id, model, source=source, replace=replace)

    def load(self, tdi_id: str) -> NetworkModel | None:
        return repo.load_network(self.session, tdi_id)

    def has_network(self, tdi_id: str) -> bool:
        return repo.load_network_id(self.session, tdi_id) is not None

    def connection_point(self, cp_id: int) -> ConnectionPointRef | None:
        found = repo.connection_point(self.session, cp_id)
        return None if found is None else _ref(found)

    def connection_points(self, tdi_id: str) -> list[ConnectionPointRef]:
        return [_ref(p) for p in repo.connection_points(self.session, tdi_id)]


def _ref(point: repo.ConnectionPointRecord) -> ConnectionPointRef:
    return ConnectionPointRef(id=point.id, name=point.name, tdi_id=point.tdi_id, feeder=point.feeder, bus=point.bus)

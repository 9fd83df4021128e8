"""`HeadroomRouter`: Ray Serve sends each new request (an HTTP synthesis, a WebSocket, a conversation) to the
replica with the most real-time headroom, not round robin.

Ray Serve runs one router per caller (each HTTP proxy, each handle) and hands it the replicas with the stats
each one last reported through `record_routing_stats` (`scale/replica.py`). Ranking is `headroom.py`'s;
within a rank Ray Serve takes the replica with the fewest ongoing requests, which is also the whole rule when
nothing has been measured. Ray Serve's request-router API is alpha (2.60): this module is the only one that
touches it. Configured by import path, `csmstream.scale.router:HeadroomRouter`, so every Ray node needs
csmstream installed.
"""

from __future__ import annotations

import logging
import random
import time

from ray.serve.request_router import FIFOMixin, PendingRequest, ReplicaID, RequestRouter, RunningReplica

from csmstream.scale.headroom import HeadroomLedger, estimate, rank_by_headroom

IMPORT_PATH = "csmstream.scale.router:HeadroomRouter"
# Ray Serve's logger: what it logs in a proxy reaches the Serve logs (and a local `csmstream serve --ray`).
log = logging.getLogger("ray.serve")


class HeadroomRouter(FIFOMixin, RequestRouter):
    def initialize_state(self, **kwargs) -> None:
        self._ledger = HeadroomLedger()
        log.info("csmstream: routing %s by real-time headroom", self._deployment_id)

    @property
    def ledger(self) -> HeadroomLedger:
        if not hasattr(self, "_ledger"):  # in case Ray builds the router without `initialize_state`
            self._ledger = HeadroomLedger()
        return self._ledger

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        now = time.time()
        by_id = {r.replica_id: r for r in candidate_replicas}
        estimates = [estimate(r.routing_stats, r.replica_id, self.ledger, now) for r in candidate_replicas]
        ranks = [[by_id[key] for key in rank] for rank in rank_by_headroom(estimates)]
        log.debug("csmstream headroom: %s", estimates)
        for rank in ranks:  # Ray takes the first of equals: shuffle, so that idle replicas share the work
            random.shuffle(rank)
        return ranks

    def on_send_request(self, replica_id: ReplicaID) -> None:
        super().on_send_request(replica_id)
        self.ledger.sent(replica_id)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        super().on_request_completed(replica_id, internal_request_id)
        self.ledger.completed(replica_id)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        self.ledger.forget({r.replica_id for r in replicas})

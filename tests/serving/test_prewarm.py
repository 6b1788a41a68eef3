"""`shipyard up` pre-starts the model servers' warm zygote; the first replica then forks
from it instead of starting one."""

from __future__ import annotations

from shipyard.client import Client
from shipyard.serving.prewarm import prewarm, warm_annotation


def test_prewarm_starts_the_zygote_replicas_use(client: Client) -> None:
    pool = client.platform.runtime.warm
    assert pool.zygote_pids() == []
    started = prewarm(client.platform)
    assert started == [warm_annotation("shipyard-sklearn")]
    pids = pool.zygote_pids()
    assert len(pids) == 1
    # Asking again reuses it: the same zygote a replica Pod annotated this way would get.
    assert pool.prestart(warm_annotation("shipyard-sklearn"))
    assert pool.zygote_pids() == pids

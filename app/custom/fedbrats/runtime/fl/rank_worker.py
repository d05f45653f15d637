"""One rank of a site in several processes: FLARE's sub-worker (``nvflare.private.fed.app.client.sub_worker_process``)
with the change it needs to start in FLARE 2.9.

FLARE's sub-worker makes its run manager with no client, and the run manager of FLARE 2.9 reads the client's arguments
(``AttributeError: 'NoneType' object has no attribute 'client_args'``): this one gives it a client with none. Everything
else is FLARE's. :class:`~fedbrats.runtime.fl.ranks.SiteRanks` starts it under ``torch.distributed.run``; the
arguments FLARE adds for its own sub-worker module come first and are dropped.
"""

import os
import sys

from nvflare.fuel.f3.mpm import MainProcessMonitor
from nvflare.private.fed.app.client import sub_worker_process as flare_worker
from nvflare.private.fed.client.client_run_manager import ClientRunManager
from nvflare.private.fed.simulator.simulator_app_runner import SimulatorClientRunManager

FLARE_WORKER = flare_worker.__name__


class _Client:
    """What FLARE's run manager reads of its client."""

    def __init__(self, name: str):
        self.client_name = name
        self.client_args = {}


class RankWorker(flare_worker.SubWorkerExecutor):
    def _get_client_run_manager(self, job_id):
        simulated = self.args.simulator_engine.lower() == "true"
        self.run_manager = (SimulatorClientRunManager if simulated else ClientRunManager)(
            client_name=self.args.client_name,
            job_id=job_id,
            workspace=self.workspace,
            client=_Client(self.args.client_name),
            components=self.components,
            handlers=self.handlers,
            conf=None,
        )


if __name__ == "__main__":
    if sys.argv[1:3] == ["-m", FLARE_WORKER]:
        del sys.argv[1:3]
    flare_worker.SubWorkerExecutor = RankWorker  # the worker FLARE's main makes
    args = flare_worker.parse_arguments()
    MainProcessMonitor.run(main_func=flare_worker.main, run_dir=os.path.join(args.workspace, args.job_id), args=args)

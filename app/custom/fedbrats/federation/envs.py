"""Where a job runs: FLARE's simulator, the POC system running on this machine, or a provisioned system."""

import os
from typing import List, Optional, Sequence

from nvflare.job_config.api import FedJob
from nvflare.recipe.session_mgr import SessionManager
from nvflare.recipe.sim_env import SimEnv
from nvflare.recipe.spec import ExecEnv
from nvflare.tool.poc.poc_commands import get_poc_workspace, get_prod_dir, is_poc_running, setup_service_config
from nvflare.tool.poc.service_constants import FlareServiceConstants

from fedbrats.prepare.site_specs import SiteSpec, parse_sites
from fedbrats.runtime.fl.site_data import SITES_ENV, write_site_settings

LOGIN_TIMEOUT = 10.0


class BratsSimEnv(SimEnv):
    """FLARE's SimEnv; a job that runs on synthetic data gets synthetic sites when no data root is given, of the
    grades ``site_grades`` gives (:class:`fedbrats.prepare.site_specs.SiteSpec`; default: each client's own)."""

    def __init__(
        self,
        *,
        clients: List[str],
        workspace_root: str,
        data_root: str = "",
        synthetic_cases: int = 0,
        site_grades: Optional[Sequence[SiteSpec]] = None,
        **kwargs,
    ):
        super().__init__(clients=clients, workspace_root=os.path.abspath(workspace_root), **kwargs)
        self.data_root, self.synthetic_cases = data_root, synthetic_cases
        self.site_grades = list(site_grades) if site_grades else parse_sites(clients)
        self.job_name = ""
        """The job deployed last: its workspace is ``<workspace_root>/<job_name>``."""

    def deploy(self, job: FedJob) -> str:
        self.job_name = job.name
        if not self.data_root:
            if not self.synthetic_cases:
                raise ValueError(f"job {job.name} runs on real data: give its data root (--data-root)")
            os.environ[SITES_ENV] = self.synthetic_sites()
        return super().deploy(job)

    def synthetic_sites(self) -> str:
        """Write (once) synthetic sites under ``<workspace_root>/data``; returns the site settings file."""
        from fedbrats.prepare.synthetic import ensure_synthetic_sites

        root = os.path.join(self.workspace_root, "data")
        return write_site_settings(
            os.path.join(self.workspace_root, "sites.json"),
            ensure_synthetic_sites(root, self.site_grades, self.synthetic_cases),
        )


class RunningPocEnv(ExecEnv):
    """Submits to the POC system already running on this machine; never prepares, stops or cleans one.

    FLARE's own ``PocEnv`` stops, removes and re-provisions a running POC system before it submits.
    """

    def __init__(
        self, poc_workspace: Optional[str] = None, login_timeout: float = LOGIN_TIMEOUT, extra: Optional[dict] = None
    ):
        super().__init__(extra)
        self.poc_workspace = os.path.abspath(poc_workspace or get_poc_workspace())
        self.login_timeout = login_timeout
        self._sessions = None

    def running(self) -> bool:
        try:
            project, services = setup_service_config(self.poc_workspace)
        except Exception:
            return False
        return bool(is_poc_running(self.poc_workspace, services, project))

    def deploy(self, job: FedJob) -> str:
        if not self.running():
            raise RuntimeError(
                f"no POC system is running in {self.poc_workspace}. Start one with 'nvflare poc prepare -c "
                "site-1 site-2' and 'nvflare poc start -ex admin@nvidia.com', give each site its data in "
                "<site>/local/fedbrats_site.json (or the job a --data-root), then submit again; "
                "'fedbrats poc' runs a complete round trip in a POC system of its own."
            )
        return self.sessions().submit_job(job)

    def sessions(self) -> SessionManager:
        if self._sessions is None:
            project, services = setup_service_config(self.poc_workspace)
            admin = services.get(FlareServiceConstants.FLARE_PROJ_ADMIN, FlareServiceConstants.FLARE_PROJ_ADMIN)
            kit = os.path.join(get_prod_dir(self.poc_workspace, project.get("name")), admin)
            self._sessions = SessionManager(
                {"username": admin, "startup_kit_location": kit, "timeout": self.login_timeout}
            )
        return self._sessions

    def get_job_status(self, job_id: str) -> Optional[str]:
        return self.sessions().get_job_status(job_id)

    def abort_job(self, job_id: str) -> None:
        self.sessions().abort_job(job_id)

    def get_job_result(self, job_id: str, timeout: float = 0.0) -> Optional[str]:
        return self.sessions().get_job_result(job_id, timeout)


def kit_user(startup_kit: str) -> str:
    """The admin user of a startup kit: FLARE names the kit's folder after it."""
    return os.path.basename(os.path.normpath(startup_kit))

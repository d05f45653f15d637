import os
import subprocess
import sys

from conftest import REPO


def test_provisioning_project_makes_startup_kits(tmp_path):
    nvflare = os.path.join(os.path.dirname(sys.executable), "nvflare")
    done = subprocess.run(
        [nvflare, "provision", "-p", os.path.join(REPO, "deploy", "project.yml"), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kits = tmp_path / "fedbrats" / "prod_00"
    assert (kits / "fl-server.example.org" / "startup" / "start.sh").is_file()
    for site in ("site-1", "site-2"):
        assert (kits / site / "startup" / "start.sh").is_file()
        assert (kits / site / "startup" / "client.crt").is_file()
        assert (kits / site / "local").is_dir()
    assert (kits / "admin@coordinator.example.org" / "startup" / "fl_admin.sh").is_file()

"""DVC with a real SSH remote: an OpenSSH server on 127.0.0.1 with throw-away keys, host-key checking on.
A reduced demo is reproduced with `dvc repro`, pushed over SSH, and pulled into a fresh git clone, which then
holds the same raw data, models and report.

Needs Debian's openssh-server (installed if absent, as root): ``make test-cluster``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from conftest import run_tool as run

pytestmark = pytest.mark.cluster
PROJECT_PARTS = ("workflow", "scripts", "config", "envs", "profiles", "src", ".dvc")
PROJECT_FILES = ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sshd_binary() -> str:
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        if os.geteuid() != 0:
            pytest.fail("openssh-server is not installed and installing it needs root")
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], env=env, check=True)
    return shutil.which("sshd") or "/usr/sbin/sshd"


def keypair(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory):
    """An sshd for the current user on 127.0.0.1; yields (url prefix, client key, HOME with known_hosts)."""
    state = tmp_path_factory.mktemp("sshd")
    sshd = sshd_binary()  # installs OpenSSH (and ssh-keygen with it) if absent
    host_key, client_key = keypair(state / "host_key"), keypair(state / "client_key")
    (state / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    port = free_port()
    (state / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {state / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {state / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # OpenSSH's privilege separation folder
    server = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(state / "sshd_config")],
        stdout=open(state / "sshd.log", "w"),  # noqa: SIM115 - the server's log for its whole life
        stderr=subprocess.STDOUT,
    )
    home = state / "home"
    (home / ".ssh").mkdir(parents=True)
    host_public = Path(f"{host_key}.pub").read_text().split()
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public[0]} {host_public[1]}\n")
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {(state / 'sshd.log').read_text()}")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    yield f"ssh://{user}@127.0.0.1:{port}", client_key, home
    server.terminate()
    server.wait(timeout=30)


def small_demo(repo: Path) -> None:
    """The demo reduced to one dataset, one model and one study, named in params.yaml."""
    demo = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    demo.update(datasets=["phantom"], models=["unet"], transfer=[], data_efficiency={"dataset": None})
    demo["model_settings"] = {"unet": demo["model_settings"]["unet"]}
    demo["robustness"]["studies"] = ["shift"]
    (repo / "config" / "small_demo.yaml").write_text(yaml.safe_dump(demo))
    (repo / "params.yaml").write_text("configfile: config/small_demo.yaml\n")


def tracked_files(repo: Path) -> dict[str, bytes]:
    """Raw data, models and the report: what DVC caches and pushes."""
    paths = [*(repo / "data" / "raw").rglob("*"), *(repo / "results" / "models").rglob("model.pt")]
    paths.append(repo / "results" / "report.html")
    return {str(path.relative_to(repo)): path.read_bytes() for path in paths if path.is_file()}


def test_push_over_ssh_and_pull_into_a_clone(ssh_server, tmp_path: Path) -> None:
    url, client_key, home = ssh_server
    repo = tmp_path / "repo"
    for name in PROJECT_PARTS:
        ignore = shutil.ignore_patterns("tmp", "cache", "__pycache__", "config.local")
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, repo / name)
    small_demo(repo)
    dvc = str(Path(sys.executable).parent / "dvc")
    storage = tmp_path / "server" / "dvc-storage"
    run(["git", "init", "-q"], repo, home)
    run([dvc, "remote", "add", "-d", "ssh", f"{url}{storage}"], repo, home)
    run([dvc, "remote", "modify", "--local", "ssh", "keyfile", str(client_key)], repo, home)
    run(["git", "add", "-A"], repo, home)
    run(["git", "commit", "-q", "-m", "project"], repo, home)
    assert "Running stage 'report'" in run([dvc, "repro"], repo, home)
    run(["git", "add", "-A"], repo, home)
    run(["git", "commit", "-q", "-m", "results"], repo, home)

    pushed = run([dvc, "push"], repo, home)
    assert "pushed" in pushed, pushed
    assert any((storage / "files" / "md5").rglob("*")), "nothing arrived on the SSH server"

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, home)
    run([dvc, "remote", "modify", "--local", "ssh", "keyfile", str(client_key)], clone, home)
    run([dvc, "pull"], clone, home)
    expected = tracked_files(repo)
    assert "results/report.html" in expected and any(name.endswith("model.pt") for name in expected)
    assert tracked_files(clone) == expected
    assert "Cache and remote 'ssh' are in sync" in run([dvc, "status", "--cloud"], clone, home)

"""The CronJob sample's container script: the night is fixed once per Job, not per pod.

The script is taken from samples/kubernetes/cronjob.yaml, Kubernetes' `$$` escapes
undone, and run by /bin/sh with `date` and `cancel-worker` replaced by stubs: a pod
retried after midnight must work on the first pod's file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

CRONJOB = Path(__file__).resolve().parents[2] / "samples" / "kubernetes" / "cronjob.yaml"


def container_script() -> str:
    doc = yaml.safe_load(CRONJOB.read_text(encoding="utf-8"))
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (worker,) = [c for c in pod["containers"] if c["name"] == "cancel-worker"]
    assert worker["command"] == ["/bin/sh", "-c"]
    (script,) = worker["args"]
    return str(script).replace("$$", "$")  # what the kubelet hands to the shell


def pod(tmp_path: Path, today: str, job_uid: str, **env: str) -> str:
    """One pod's run: returns the input path it hands to cancel-worker."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    (stubs / "date").write_text(f"#!/bin/sh\necho {today}\n")
    (stubs / "cancel-worker").write_text('#!/bin/sh\necho "$2"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    script = container_script().replace("/data/reports/", f"{reports}/")
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": f"{stubs}:{os.environ['PATH']}", "JOB_UID": job_uid, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_pod_retried_after_midnight_works_on_the_first_pods_night(tmp_path: Path) -> None:
    first = pod(tmp_path, "2026-11-26", "uid-a")
    retried = pod(tmp_path, "2026-11-27", "uid-a")  # same Job, after midnight
    assert first == retried == "/data/input/payments-2026-11-26.csv"
    # the next night's Job has its own UID, so its own date
    assert pod(tmp_path, "2026-11-27", "uid-b") == "/data/input/payments-2026-11-27.csv"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        ".night-uid-a",
        ".night-uid-b",
    ]


def test_run_date_overrides_the_pin_for_a_manual_rerun(tmp_path: Path) -> None:
    pod(tmp_path, "2026-11-26", "uid-a")
    rerun = pod(tmp_path, "2026-11-28", "uid-a", RUN_DATE="2026-11-20")
    assert rerun == "/data/input/payments-2026-11-20.csv"

"""Check the Kubernetes samples for what a JSON schema cannot see.

kubernetes-validate checks each field's shape. These are the cross-field rules that
the API server would only enforce at `kubectl apply` time, plus the worker's own
invariants: the pod failure policy treats each exit code as `worker.exits` says
(codes a rerun cannot change fail their index at once; the others are retried, a
bounded number of times), and the file's comments list every exit code.
Usage: check_k8s_rules.py FILE.yaml... ; prints one line per finding, exits 1 if
there is any.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import yaml

from worker.exits import MEANINGS, RERUN_HELPS

CONTAINER = "cancel-worker"
DEFAULT_GRACE_SECONDS = 20  # the worker's --grace-seconds default (README: Options)
ACTIONS = {"Count", "FailIndex", "FailJob", "Ignore"}
#: Exit codes no retry can change: their index fails at once.
FINAL_CODES = sorted(int(c) for c in MEANINGS if c not in RERUN_HELPS and c != 0)
#: Exit codes a rerun may finish: retried, but never forever (not `Ignore`d).
RETRIED_CODES = sorted(int(c) for c in RERUN_HELPS)


def job_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc.get("kind") == "Job":
        yield doc["spec"]
    elif doc.get("kind") == "CronJob":
        yield doc["spec"]["jobTemplate"]["spec"]


def grace_seconds(container: dict[str, Any]) -> int:
    words = " ".join(str(a) for a in container.get("command", []) + container.get("args", []))
    parts = words.split()
    for i, word in enumerate(parts):
        if word == "--grace-seconds" and i + 1 < len(parts):
            return int(parts[i + 1])
        if word.startswith("--grace-seconds="):
            return int(word.split("=", 1)[1])
    return DEFAULT_GRACE_SECONDS


def check_job(spec: dict[str, Any]) -> Iterator[str]:
    pod = spec["template"]["spec"]
    containers = {c["name"]: c for c in pod.get("containers", []) + pod.get("initContainers", [])}
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions", 1)
    policy = spec.get("podFailurePolicy")

    if ("backoffLimitPerIndex" in spec or "maxFailedIndexes" in spec) and not indexed:
        yield "backoffLimitPerIndex/maxFailedIndexes need completionMode: Indexed"
    if spec.get("maxFailedIndexes", 0) > completions:
        yield "maxFailedIndexes must be <= completions"
    if policy is not None:
        if pod.get("restartPolicy") != "Never":
            yield "podFailurePolicy needs template restartPolicy: Never"
        if spec.get("podReplacementPolicy", "Failed") != "Failed":
            yield "podFailurePolicy needs podReplacementPolicy: Failed"
        for n, rule in enumerate(policy.get("rules", [])):
            where = f"podFailurePolicy.rules[{n}]"
            if rule.get("action") not in ACTIONS:
                yield f"{where}: unknown action {rule.get('action')!r}"
            if rule.get("action") == "FailIndex" and "backoffLimitPerIndex" not in spec:
                yield f"{where}: FailIndex needs backoffLimitPerIndex"
            on_codes = rule.get("onExitCodes")
            if (on_codes is None) == (not rule.get("onPodConditions")):
                yield f"{where}: needs exactly one of onExitCodes and onPodConditions"
            if on_codes is not None:
                values = on_codes.get("values", [])
                name = on_codes.get("containerName")
                if name is not None and name not in containers:
                    yield f"{where}: no container named {name!r}"
                if values != sorted(set(values)) or not values:
                    yield f"{where}: exit code values must be unique and ordered"
                if on_codes.get("operator") == "In" and 0 in values:
                    yield f"{where}: exit code 0 is not allowed with operator In"
            for cond in rule.get("onPodConditions", []):
                if cond.get("status") not in {"True", "False", "Unknown"}:
                    yield f"{where}: onPodConditions status must be True, False or Unknown"

    if policy is not None:
        yield from check_exit_policy(spec, policy)

    worker = containers.get(CONTAINER)
    if worker is None:
        yield f"no container named {CONTAINER!r}"
        return
    env = {e["name"]: e.get("value") for e in worker.get("env", [])}
    if indexed and env.get("SHARD_COUNT") != str(completions):
        yield (
            f"SHARD_COUNT ({env.get('SHARD_COUNT')}) must equal completions ({completions}):"
            " otherwise some shards never run and their references are silently skipped"
        )
    grace = grace_seconds(worker)
    if grace >= pod.get("terminationGracePeriodSeconds", 30):
        yield (
            f"--grace-seconds ({grace}) must stay below terminationGracePeriodSeconds"
            f" ({pod.get('terminationGracePeriodSeconds', 30)}), or SIGKILL cuts the drain"
        )


def check_exit_policy(spec: dict[str, Any], policy: dict[str, Any]) -> Iterator[str]:
    """The pod failure policy against the worker's exit table (worker/exits.py)."""
    actions: dict[int, str] = {}
    for rule in policy.get("rules", []):
        codes = rule.get("onExitCodes") or {}
        if codes.get("containerName", CONTAINER) != CONTAINER or codes.get("operator") != "In":
            continue
        for code in codes.get("values", []):
            actions.setdefault(code, rule.get("action"))  # the first matching rule wins
    for code in FINAL_CODES:
        if actions.get(code) != "FailIndex":
            yield f"exit {code} cannot be changed by a retry: podFailurePolicy must FailIndex it"
    for code in RETRIED_CODES:
        if actions.get(code, "Count") != "Count":
            yield (
                f"exit {code} is worth a retry (bounded by backoffLimitPerIndex): "
                f"podFailurePolicy must count it, not {actions[code]}"
            )
    if "backoffLimitPerIndex" not in spec and "backoffLimit" not in spec:
        yield "retries must be bounded: set backoffLimitPerIndex (or backoffLimit)"


def undocumented_codes(text: str) -> list[int]:
    """Exit codes the file's comments do not list (`#   5   ...`, `#   130/143  ...`)."""
    listed: set[int] = set()
    for match in re.finditer(r"^#\s+(\d+(?:/\d+)*)\s", text, re.MULTILINE):
        listed.update(int(c) for c in match.group(1).split("/"))
    return [int(c) for c in MEANINGS if int(c) not in listed]


def main(paths: list[str]) -> int:
    findings = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        docs = [d for d in yaml.safe_load_all(text) if d]
        for doc in docs:
            specs = list(job_specs(doc))
            if specs and (missing := undocumented_codes(text)):
                findings += 1
                print(f"ERROR {path}: the comments do not say what exit {missing} do")
            for spec in specs:
                for problem in check_job(spec):
                    findings += 1
                    print(f"ERROR {path}: {doc['kind']}/{doc['metadata']['name']}: {problem}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

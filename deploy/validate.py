"""Validates rendered Kubernetes manifests (multi-document YAML on stdin).

Kubernetes objects are checked against the official schemas of KUBERNETES_VERSION by the
kubernetes-validate package in strict mode (unknown fields fail). KEDA objects are not in
those schemas; they are checked for the fields KEDA requires. Exits 1 on any problem.
"""

import sys

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.32.0"


def check_keda(doc, by_kind):
    """The fields a ScaledObject / TriggerAuthentication needs to work."""
    problems = []
    name = doc.get("metadata", {}).get("name")
    spec = doc.get("spec") or {}
    if doc["kind"] == "ScaledObject":
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if target not in by_kind.get("Deployment", {}):
            problems.append(f"scaleTargetRef.name {target!r} is not a Deployment here")
        triggers = spec.get("triggers") or []
        if not triggers:
            problems.append("no triggers")
        for trigger in triggers:
            meta = trigger.get("metadata") or {}
            if trigger.get("type") != "rabbitmq":
                problems.append(f"trigger type {trigger.get('type')!r} is not rabbitmq")
            for field in ("queueName", "mode", "value", "protocol"):
                if not meta.get(field):
                    problems.append(f"trigger metadata.{field} is missing")
            if meta.get("protocol") != "http":
                problems.append("protocol must be http (amqp ignores unacked messages)")
            if meta.get("mode") not in ("QueueLength", "MessageRate"):
                problems.append(f"mode {meta.get('mode')!r} is not QueueLength or MessageRate")
            auth = (trigger.get("authenticationRef") or {}).get("name")
            if auth not in by_kind.get("TriggerAuthentication", {}):
                problems.append(f"authenticationRef {auth!r} is not a TriggerAuthentication here")
        hpas = by_kind.get("HorizontalPodAutoscaler", {}).values()
        if any((h["spec"]["scaleTargetRef"]["name"] == target) for h in hpas):
            problems.append("a second HPA targets the same Deployment as KEDA")
    elif doc["kind"] == "TriggerAuthentication":
        refs = spec.get("secretTargetRef") or []
        if not refs:
            problems.append("no secretTargetRef")
        for ref in refs:
            for field in ("parameter", "name", "key"):
                if not ref.get(field):
                    problems.append(f"secretTargetRef.{field} is missing")
            if ref.get("name") not in by_kind.get("Secret", {}):
                problems.append(f"secret {ref.get('name')!r} is not defined here")
    return [f"{doc['kind']}/{name}: {p}" for p in problems]


def main():
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    problems = []
    for doc in docs:
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].startswith("keda.sh/"):
            found = check_keda(doc, by_kind)
            problems.extend(found)
            print(f"{'FAIL' if found else 'ok  '} {label} (KEDA fields)")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            print(f"ok   {label} (Kubernetes {KUBERNETES_VERSION}, strict)")
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{label}: {error.message} at {'.'.join(map(str, error.path))}")
            print(f"FAIL {label}")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    print(f"{len(docs)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

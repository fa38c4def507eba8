"""Validates rendered Kubernetes manifests (multi-document YAML on stdin).

Kubernetes objects are checked against the official schemas of KUBERNETES_VERSION by the
kubernetes-validate package in strict mode (unknown fields fail). KEDA objects are not in
those schemas; they are checked for the fields KEDA requires. Every HOOKLINE__SECTION__KEY
variable (a container's env, a ConfigMap's or Secret's keys) must name a documented setting,
and a secretKeyRef or configMapKeyRef to an object rendered here must name one of its keys.
Exits 1 on any problem.

`validate.py --compose FILE...` checks the HOOKLINE__ variables of compose files instead.
"""

import pathlib
import re
import sys

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.32.0"
REPO = pathlib.Path(__file__).resolve().parent.parent


def documented_settings():
    """Every setting as `section.key` (or `key` at the top level): the keys
    hookline.example.toml shows, commented out or not, and the rows of the configuration
    table in docs/operations.md (which also lists the keys the example leaves out)."""
    keys = set()
    section = None
    for line in (REPO / "hookline.example.toml").read_text().splitlines():
        header = re.match(r"^\[([a-z_]+)\]\s*$", line)
        if header:
            section = header.group(1)
            continue
        key = re.match(r"^#?\s*([a-z][a-z0-9_]*)\s*=", line)
        if key:
            keys.add(f"{section}.{key.group(1)}" if section else key.group(1))
    table = (REPO / "docs/operations.md").read_text()
    keys.update(re.findall(r"^\| `([a-z_.]+)` \| `HOOKLINE__", table, re.M))
    return keys


def check_variable(name, settings):
    """A problem with an environment variable's name, or None. Names not starting with
    HOOKLINE__ are not Hookline's (HOOKLINE_CONFIG, RUST_LOG, OTEL_*)."""
    if not name.upper().startswith("HOOKLINE__"):
        return None
    key = ".".join(name[len("HOOKLINE__"):].lower().split("__"))
    if key in settings:
        return None
    return f"{name}: {key} is not a setting (hookline.example.toml, docs/operations.md)"


def pod_specs(node):
    """Every pod spec in an object (a Deployment's, a Job's, a CronJob's...)."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for value in node:
            yield from pod_specs(value)


def check_settings(doc, by_kind, settings):
    """HOOKLINE__ names and key references in one object."""
    problems = []
    if doc["kind"] in ("ConfigMap", "Secret"):
        for field in ("data", "stringData"):
            for name in doc.get(field) or {}:
                problems.append(check_variable(name, settings))
    for spec in pod_specs(doc):
        for container in spec.get("initContainers", []) + spec["containers"]:
            for var in container.get("env") or []:
                problems.append(check_variable(var.get("name", ""), settings))
                source = var.get("valueFrom") or {}
                for ref_field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = source.get(ref_field)
                    target = by_kind.get(kind, {}).get((ref or {}).get("name"))
                    if not ref or target is None or ref.get("optional"):
                        continue
                    keys = set(target.get("data") or {}) | set(target.get("stringData") or {})
                    if ref.get("key") not in keys:
                        problems.append(
                            f"{var.get('name')}: {kind} {ref.get('name')!r} has no key {ref.get('key')!r}"
                        )
    return [p for p in problems if p]


def check_compose(paths, settings):
    """HOOKLINE__ names in compose files' service environments (mapping or list form)."""
    problems = []
    for path in paths:
        with open(path) as file:
            compose = yaml.safe_load(file) or {}
        for service, body in (compose.get("services") or {}).items():
            environment = (body or {}).get("environment") or {}
            if isinstance(environment, list):
                names = [item.split("=", 1)[0] for item in environment]
            else:
                names = list(environment)
            found = [p for p in (check_variable(n, settings) for n in names) if p]
            problems.extend(f"{path}: service {service}: {p}" for p in found)
            print(f"{'FAIL' if found else 'ok  '} {path}: service {service} (HOOKLINE__ names)")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


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
    settings = documented_settings()
    if sys.argv[1:2] == ["--compose"]:
        return check_compose(sys.argv[2:], settings)
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
        found = [f"{label}: {p}" for p in check_settings(doc, by_kind, settings)]
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            found.append(f"{label}: {error.message} at {'.'.join(map(str, error.path))}")
        problems.extend(found)
        if found:
            print(f"FAIL {label}")
        else:
            print(f"ok   {label} (Kubernetes {KUBERNETES_VERSION}, strict)")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    print(f"{len(docs)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

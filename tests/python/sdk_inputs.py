"""Lists every operation the official Svix Python SDK can send, with its inputs.

No server is contacted: each method of every resource reachable from `Svix` is called with
placeholder arguments while the SDK's request function is replaced by one that records the
request and stops. What it records, with the option classes and pydantic models the method
takes, is printed as one JSON line:

  [{"sdk": "python", "name": "message.create", "method": "POST",
    "path": "/api/v1/app/{app_id}/msg",
    "query": [{"name": "with_content", "schema": {...}, "always": "false"}],
    "body": {"model": "MessageIn", "schema": {...pydantic JSON schema...}} or null}]

`always` is the value the SDK sends when the caller sets nothing (null: only when set).
"""

import dataclasses
import datetime
import enum
import inspect
import json
import sys
import typing as t

import pydantic
from svix.api import Svix, SvixOptions
from svix.api.common import ApiBaseSync, BaseOptions


class Recorded(Exception):
    """Raised by the stand-in request function once it has seen the request."""

    def __init__(self, request: dict):
        super().__init__("recorded")
        self.request = request


def record(**request):
    raise Recorded(request)


def resources(root, prefix=""):
    """(dotted name, resource) for every ApiBaseSync reachable through properties."""
    for name, member in inspect.getmembers(type(root)):
        if name.startswith("_") or not isinstance(member, property):
            continue
        value = getattr(root, name)
        if isinstance(value, ApiBaseSync):
            dotted = f"{prefix}{name}"
            yield dotted, value
            yield from resources(value, dotted + ".")


def sample(tp):
    """A plausible value of the annotated type, for finding an option's query name."""
    origin = t.get_origin(tp)
    if origin is t.Union:
        return sample(next(a for a in t.get_args(tp) if a is not type(None)))
    if origin in (list, t.List, set, t.Set):
        return [sample(t.get_args(tp)[0])]
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return next(iter(tp))
    if tp is bool:
        return True
    if tp is int:
        return 1
    if tp is datetime.datetime:
        return datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return "x"


def query_inputs(options_type):
    """The query parameters an option class sends: each field is set alone, and the
    parameters that change are the ones it controls (a header option changes none)."""
    if options_type is None:
        return []
    defaults = options_type()._query_params()
    hints = t.get_type_hints(options_type)
    inputs = []
    for field in dataclasses.fields(options_type):
        hint = hints[field.name]
        # A flag the SDK sends as `true` by default shows up only when set to false.
        values = [sample(hint), False] if sample(hint) is True else [sample(hint)]
        changed = {}
        for value in values:
            one = options_type(**{field.name: value})._query_params()
            changed.update({k: v for k, v in one.items() if defaults.get(k) != v})
        for name in changed:
            if any(i["name"] == name for i in inputs):
                continue
            inputs.append(
                {
                    "name": name,
                    "schema": pydantic.TypeAdapter(hint).json_schema(),
                    "always": defaults.get(name),
                }
            )
    return inputs


def operation(name, resource, method_name):
    method = getattr(resource, method_name)
    hints = t.get_type_hints(method)
    args, body_model, options_type = [], None, None
    for param in inspect.signature(method).parameters.values():
        hint = hints.get(param.name)
        if inspect.isclass(hint) and issubclass(hint, pydantic.BaseModel):
            body_model = hint
            args.append(hint.model_construct())
        elif inspect.isclass(hint) and issubclass(hint, BaseOptions):
            options_type = hint
            args.append(hint())
        elif param.default is inspect.Parameter.empty:
            args.append(f"x_{param.name}")
    resource._request_sync = record
    try:
        method(*args)
    except Recorded as recorded:
        request = recorded.request
    else:
        return None
    return {
        "sdk": "python",
        "name": f"{name}.{method_name}",
        "method": request["method"].upper(),
        "path": request["path"],
        "query": query_inputs(options_type),
        "body": None
        if body_model is None or request.get("json_body") is None
        else {
            "model": body_model.__name__,
            "schema": body_model.model_json_schema(by_alias=True),
        },
    }


def main() -> int:
    client = Svix("unused", SvixOptions(server_url="http://127.0.0.1:9"))
    found = []
    for name, resource in resources(client):
        for method_name, member in inspect.getmembers(type(resource), inspect.isfunction):
            if method_name.startswith("_"):
                continue
            op = operation(name, resource, method_name)
            if op is not None:
                found.append(op)
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # report as JSON for the Rust test to show
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        sys.exit(1)

"""Every event type call of the official Svix Python SDK against Hookline.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN.
"""

from svix.api import (
    EventTypeCreateOptions,
    EventTypeDeleteOptions,
    EventTypeImportOpenApiIn,
    EventTypeIn,
    EventTypeListOptions,
    EventTypeOut,
    EventTypePatch,
    EventTypeUpsertIn,
    Ordering,
)

from sdk_common import check, error_of, is_time, names_field, run

SCHEMAS = {"1": {"type": "object", "examples": [{"n": 0}]}}
PETS = """
openapi: 3.1.0
info: {title: Pets, version: "1"}
webhooks:
  py.pet.new:
    post:
      summary: A new pet
      x-svix-group-name: pets
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Pet"}
            example: {name: Rex}
components:
  schemas:
    Pet: {type: object, properties: {name: {type: string}}}
"""


def names(page):
    return [t.name for t in page.data]


def listed(c, **options):
    return names(c.event_type.list(EventTypeListOptions(limit=250, **options)))


def main(c):
    alpha = c.event_type.create(
        EventTypeIn(
            name="py.alpha",
            description="Alpha",
            schemas=SCHEMAS,
            feature_flags=["beta-ui"],
            group_name="billing",
        )
    )
    check(isinstance(alpha, EventTypeOut), "create answers EventTypeOut", alpha)
    check(is_time(alpha.created_at) and is_time(alpha.updated_at), "times parse", alpha)
    check(alpha.archived is False and alpha.deprecated is False, "flags default", alpha)
    check(alpha.schemas == SCHEMAS, "schemas kept", alpha)
    check(alpha.feature_flags == ["beta-ui"] and alpha.group_name == "billing", "kept", alpha)
    status, body = error_of(
        lambda: c.event_type.create(EventTypeIn(name="py.alpha", description="Again"))
    )
    check(status == 409, "a live name is taken", (status, body))
    status, body = error_of(
        lambda: c.event_type.create(
            EventTypeIn(name="py.bad", description="x", feature_flags=["no spaces"])
        )
    )
    check(status == 422 and names_field(body, "featureFlags"), "bad flag named", body)
    for name in ["py.bravo", "py.charlie"]:
        once = EventTypeCreateOptions(idempotency_key=f"create-{name}")
        first = c.event_type.create(EventTypeIn(name=name, description=name, deprecated=True), once)
        again = c.event_type.create(EventTypeIn(name=name, description=name, deprecated=True), once)
        check(again.created_at == first.created_at, "a repeated key answers the first create", again)

    got = c.event_type.get("py.alpha")
    check(got.schemas == SCHEMAS and got.group_name == "billing", "get", got)
    upserted = c.event_type.upsert(
        "py.alpha", EventTypeUpsertIn(description="Alpha 2", feature_flags=["a", "b"])
    )
    check(upserted.description == "Alpha 2" and upserted.schemas is None, "upsert replaces", upserted)
    check(upserted.feature_flags == ["a", "b"] and upserted.group_name is None, "flags", upserted)
    check(upserted.created_at == alpha.created_at, "upsert keeps created_at", upserted)
    created = c.event_type.upsert("py.delta", EventTypeUpsertIn(description="Delta"))
    check(created.name == "py.delta" and created.description == "Delta", "upsert creates", created)
    patched = c.event_type.patch(
        "py.alpha", EventTypePatch(schemas=SCHEMAS, deprecated=True, group_name="ops")
    )
    check(patched.schemas == SCHEMAS and patched.deprecated, "patch sets", patched)
    check(patched.description == "Alpha 2" and patched.feature_flags == ["a", "b"], "keeps", patched)
    check(patched.group_name == "ops", "patch sets group_name", patched)
    cleared = c.event_type.patch("py.alpha", EventTypePatch(feature_flags=None))
    check(cleared.feature_flags is None, "patch null clears feature_flags", cleared)

    every = ["py.alpha", "py.bravo", "py.charlie", "py.delta"]
    check(listed(c) == every, "listed by name", listed(c))
    bare = c.event_type.list(EventTypeListOptions(limit=250))
    check(all(t.schemas is None for t in bare.data), "schemas only with_content", bare)
    full = c.event_type.list(EventTypeListOptions(limit=250, with_content=True))
    check(full.data[0].schemas == SCHEMAS, "with_content=True shows schemas", full)
    first = c.event_type.list(EventTypeListOptions(limit=2))
    second = c.event_type.list(EventTypeListOptions(limit=2, iterator=first.iterator))
    back = c.event_type.list(EventTypeListOptions(limit=2, iterator=second.prev_iterator))
    check(names(first) == every[:2] and names(second) == every[2:], "pages", names(second))
    check(names(back) == names(first), "prev_iterator reads the first page", names(back))
    check(listed(c, order=Ordering.DESCENDING) == every[::-1], "descending")

    # Delete archives: still readable, listed only with include_archived.
    c.event_type.delete("py.bravo")
    archived = c.event_type.get("py.bravo")
    check(archived.archived is True and archived.deprecated, "delete archives", archived)
    check("py.bravo" not in listed(c), "archived types leave the list", listed(c))
    check("py.bravo" in listed(c, include_archived=True), "include_archived shows them")
    back_again = c.event_type.patch("py.bravo", EventTypePatch(archived=False))
    check(back_again.archived is False and "py.bravo" in listed(c), "patch unarchives", back_again)
    c.event_type.delete("py.bravo")
    revived = c.event_type.create(EventTypeIn(name="py.bravo", description="Bravo 2"))
    check(revived.archived is False and revived.description == "Bravo 2", "create revives", revived)
    check(revived.deprecated is False, "a revived type takes the new fields", revived)
    c.event_type.delete("py.charlie")
    unarchived = c.event_type.upsert("py.charlie", EventTypeUpsertIn(description="C", archived=False))
    check(unarchived.archived is False and "py.charlie" in listed(c), "upsert unarchives", unarchived)

    c.event_type.delete("py.delta", EventTypeDeleteOptions(expunge=True))
    status, body = error_of(lambda: c.event_type.get("py.delta"))
    check(status == 404 and body["code"] == "not_found", "expunge removes", (status, body))
    check("py.delta" not in listed(c, include_archived=True), "expunged is not archived")
    import_openapi(c)
    return {"types": listed(c, include_archived=True)}


def import_openapi(c):
    dry = c.event_type.import_openapi(EventTypeImportOpenApiIn(spec_raw=PETS, dry_run=True))
    check(dry.data.modified == ["py.pet.new"], "a dry run names the change", dry)
    check(dry.data.to_modify[0].group_name == "pets", "and shows it", dry)
    status, body = error_of(lambda: c.event_type.get("py.pet.new"))
    check(status == 404, "a dry run changes nothing", body)
    done = c.event_type.import_openapi(EventTypeImportOpenApiIn(spec_raw=PETS))
    check(done.data.modified == ["py.pet.new"] and done.data.to_modify is None, "imported", done)
    pet = c.event_type.get("py.pet.new")
    check(pet.description == "A new pet" and pet.group_name == "pets", "from the spec", pet)
    check(pet.schemas["1"]["examples"] == [{"name": "Rex"}], "with its example", pet)
    check(pet.schemas["1"]["properties"] == {"name": {"type": "string"}}, "$ref inlined", pet)
    again = c.event_type.import_openapi(EventTypeImportOpenApiIn(spec_raw=PETS))
    check(again.data.modified == [], "an unchanged import changes nothing", again)
    only = {"webhooks": {"py.pet.new": {"post": {"summary": "A new pet", "x-svix-group-name": "pets"}}}}
    replaced = c.event_type.import_openapi(EventTypeImportOpenApiIn(spec=only, replace_all=True))
    check("py.alpha" in replaced.data.modified, "replace_all archives the rest", replaced)
    check(listed(c) == ["py.pet.new"], "only the spec's types stay listed", listed(c))
    status, body = error_of(lambda: c.event_type.import_openapi(EventTypeImportOpenApiIn(spec=only, spec_raw=PETS)))
    check(status == 400, "spec or spec_raw, not both", body)


run(main)

// Every event type call of the official Svix JavaScript SDK against Hookline.
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN.
import { Ordering } from "svix";

import { check, client, run } from "./lib.mjs";
import { checkPage, errorOf, isTime, namesField, same } from "./checks.mjs";

const svix = client();
const SCHEMAS = { 1: { type: "object", examples: [{ n: 0 }] } };
const names = (page) => page.data.map((t) => t.name);

async function listed(options = {}) {
  return names(checkPage(await svix.eventType.list({ limit: 250, ...options }), "types"));
}

run(async () => {
  const alpha = await svix.eventType.create({
    name: "js.alpha",
    description: "Alpha",
    schemas: SCHEMAS,
    featureFlag: "beta-ui",
    groupName: "billing",
  });
  check(isTime(alpha.createdAt) && isTime(alpha.updatedAt), "times parse", alpha);
  check(alpha.archived === false && alpha.deprecated === false, "flags default", alpha);
  check(same(alpha.schemas, SCHEMAS) && alpha.groupName === "billing", "kept", alpha);
  check(alpha.featureFlag === "beta-ui" && same(alpha.featureFlags, ["beta-ui"]), "flag", alpha);
  const taken = await errorOf(() => svix.eventType.create({ name: "js.alpha", description: "x" }));
  check(taken.status === 409, "a live name is taken", taken);
  const both = await errorOf(() =>
    svix.eventType.create({ name: "js.x", description: "x", featureFlag: "a", featureFlags: ["b"] }),
  );
  check(both.status === 422 && namesField(both.body, "featureFlag"), "one flag form", both);
  for (const name of ["js.bravo", "js.charlie"]) {
    await svix.eventType.create({ name, description: name, deprecated: true });
  }

  const got = await svix.eventType.get("js.alpha");
  check(same(got.schemas, SCHEMAS) && got.groupName === "billing", "get", got);
  const updated = await svix.eventType.update("js.alpha", {
    description: "Alpha 2",
    featureFlags: ["b", "a"],
  });
  check(updated.description === "Alpha 2" && updated.schemas == null, "update replaces", updated);
  check(same(updated.featureFlags, ["a", "b"]) && updated.featureFlag == null, "flags", updated);
  check(updated.createdAt.getTime() === alpha.createdAt.getTime(), "createdAt kept", updated);
  const created = await svix.eventType.update("js.delta", { description: "Delta" });
  check(created.name === "js.delta", "update creates", created);
  const patched = await svix.eventType.patch("js.alpha", {
    schemas: SCHEMAS,
    deprecated: true,
    groupName: "ops",
  });
  check(same(patched.schemas, SCHEMAS) && patched.deprecated, "patch sets", patched);
  check(patched.description === "Alpha 2" && patched.groupName === "ops", "patch keeps", patched);
  const cleared = await svix.eventType.patch("js.alpha", { featureFlags: null, groupName: null });
  check(cleared.featureFlags == null && cleared.groupName == null, "null clears", cleared);

  const every = ["js.alpha", "js.bravo", "js.charlie", "js.delta"];
  check(same(await listed(), every), "listed by name", await listed());
  const bare = await svix.eventType.list({ limit: 250 });
  check(bare.data.every((t) => t.schemas == null), "schemas only withContent", bare);
  const full = await svix.eventType.list({ limit: 250, withContent: true });
  check(same(full.data[0].schemas, SCHEMAS), "withContent shows schemas", full);
  const first = await svix.eventType.list({ limit: 2 });
  const second = await svix.eventType.list({ limit: 2, iterator: first.iterator });
  const back = await svix.eventType.list({ limit: 2, iterator: second.prevIterator });
  check(same(names(first), every.slice(0, 2)) && same(names(second), every.slice(2)), "pages");
  check(same(names(back), names(first)), "prevIterator reads the first page", back);
  check(same(await listed({ order: Ordering.Descending }), [...every].reverse()), "descending");

  await svix.eventType.delete("js.bravo");
  const archived = await svix.eventType.get("js.bravo");
  check(archived.archived === true, "delete archives", archived);
  check(!(await listed()).includes("js.bravo"), "archived types leave the list");
  check((await listed({ includeArchived: true })).includes("js.bravo"), "includeArchived");
  const unarchived = await svix.eventType.patch("js.bravo", { archived: false });
  check(unarchived.archived === false && (await listed()).includes("js.bravo"), "patch unarchives");
  await svix.eventType.delete("js.bravo");
  const revived = await svix.eventType.create({ name: "js.bravo", description: "Bravo 2" });
  check(!revived.archived && !revived.deprecated && revived.description === "Bravo 2", "revived");
  await svix.eventType.delete("js.charlie");
  const upserted = await svix.eventType.update("js.charlie", { description: "C", archived: false });
  check(!upserted.archived && (await listed()).includes("js.charlie"), "update unarchives");

  await svix.eventType.delete("js.delta", { expunge: true });
  const gone = await errorOf(() => svix.eventType.get("js.delta"));
  check(gone.status === 404 && gone.body.code === "not_found", "expunge removes", gone);
  check(!(await listed({ includeArchived: true })).includes("js.delta"), "expunged for good");
  await importOpenapi();
  return { types: await listed({ includeArchived: true }) };
});

const PETS = {
  openapi: "3.1.0",
  info: { title: "Pets", version: "1" },
  webhooks: {
    "js.pet.new": {
      post: {
        description: "A new pet",
        "x-svix-feature-flags": ["beta"],
        requestBody: {
          content: {
            "application/json": {
              schema: { $ref: "#/components/schemas/Pet" },
              examples: { rex: { value: { name: "Rex" } } },
            },
          },
        },
      },
    },
  },
  components: { schemas: { Pet: { type: "object", properties: { name: { type: "string" } } } } },
};

async function importOpenapi() {
  const dry = await svix.eventType.importOpenapi({ spec: PETS, dryRun: true });
  check(same(dry.data.modified, ["js.pet.new"]) && dry.data.toModify?.length === 1, "dry run", dry);
  check(same(dry.data.toModify[0].featureFlags, ["beta"]), "the flags it would set", dry);
  const absent = await errorOf(() => svix.eventType.get("js.pet.new"));
  check(absent.status === 404, "a dry run changes nothing", absent);
  const done = await svix.eventType.importOpenapi({ specRaw: JSON.stringify(PETS) });
  check(same(done.data.modified, ["js.pet.new"]), "imported", done);
  const pet = await svix.eventType.get("js.pet.new");
  check(pet.description === "A new pet" && same(pet.featureFlags, ["beta"]), "from the spec", pet);
  check(same(pet.schemas["1"].examples, [{ name: "Rex" }]), "with its example", pet);
  const again = await svix.eventType.importOpenapi({ spec: PETS });
  check(same(again.data.modified, []), "an unchanged import changes nothing", again);
  const replaced = await svix.eventType.importOpenapi({ spec: PETS, replaceAll: true });
  check(replaced.data.modified.includes("js.alpha"), "replaceAll archives the rest", replaced);
  check(same(await listed(), ["js.pet.new"]), "only the spec's types stay listed");
  const neither = await errorOf(() => svix.eventType.importOpenapi({}));
  check(neither.status === 400, "spec or specRaw is needed", neither);
}

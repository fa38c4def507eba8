// Lists every operation the official Svix JavaScript SDK can send, with its inputs, as one
// JSON line (the same shape tests/python/sdk_inputs.py prints):
//
//   [{"sdk": "js", "name": "message.create", "method": "POST",
//     "path": "/api/v1/app/{app_id}/msg",
//     "query": [{"name": "with_content", "schema": {...}, "always": "false"}],
//     "body": {"model": "MessageIn", "schema": {"properties": ..., "$defs": ...}} or null}]
//
// No server is contacted. The resources are found by walking the getters of a `Svix` client;
// each method's request (HTTP method, path, query parameters, body serializer) is read from
// the method's own code, and the types of its options and body from the SDK's .d.ts files.
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Svix } from "svix";

const dist = dirname(createRequire(import.meta.url).resolve("svix"));

function read(file) {
  return readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
}

// `export interface Name { ... }` and `export declare enum Name { ... }` across the .d.ts files.
const interfaces = new Map();
const enums = new Map();
for (const folder of ["api", "models"]) {
  for (const file of readdirSync(join(dist, folder)).filter((f) => f.endsWith(".d.ts"))) {
    const text = read(join(dist, folder, file));
    for (const m of text.matchAll(/export interface (\w+) \{/g)) {
      interfaces.set(m[1], block(text, m.index + m[0].length));
    }
    for (const m of text.matchAll(/export declare enum (\w+) \{([^}]*)\}/g)) {
      enums.set(m[1], m[2].split(",").map((v) => v.split("=")[1]?.trim()).filter(Boolean)
        .map((v) => (v.startsWith('"') ? JSON.parse(v) : Number(v))));
    }
  }
}

// The text of a `{ ... }` block whose opening brace ends at `start`.
function block(text, start) {
  let depth = 1;
  for (let i = start; i < text.length; i++) {
    if (text[i] === "{") depth++;
    if (text[i] === "}" && --depth === 0) return text.slice(start, i);
  }
  throw new Error(`unclosed block at ${start}`);
}

// `name?: type;` members of an interface body, split at semicolons outside nested braces.
function members(body) {
  const found = [];
  let depth = 0;
  let current = "";
  for (const ch of body) {
    if (ch === "{") depth++;
    if (ch === "}") depth--;
    if (ch === ";" && depth === 0) {
      const m = current.trim().match(/^(\w+)(\??):\s*([\s\S]+)$/);
      if (m) found.push({ name: m[1], optional: m[2] === "?", type: m[3].replace(/\s+/g, " ") });
      current = "";
    } else {
      current += ch;
    }
  }
  return found;
}

// A TypeScript type as JSON schema; named interfaces go to `defs`.
function schema(type, defs) {
  const parts = type.split(/\s*\|\s*(?![^{]*\})/).map((p) => p.trim()).filter((p) => p !== "null");
  if (parts.length !== 1) return { anyOf: parts.map((p) => schema(p, defs)) };
  const t = parts[0];
  if (t.endsWith("[]")) return { type: "array", items: schema(t.slice(0, -2), defs) };
  const map = t.match(/^\{ \[key: string\]: (.+); \}$/);
  if (map) return { type: "object", additionalProperties: schema(map[1], defs) };
  if (t === "string") return { type: "string" };
  if (t === "number") return { type: "integer" };
  if (t === "boolean") return { type: "boolean" };
  if (t === "Date") return { type: "string", format: "date-time" };
  if (t === "any") return {};
  if (enums.has(t)) return { enum: enums.get(t) };
  if (interfaces.has(t)) {
    if (!defs[t]) {
      defs[t] = {};
      defs[t] = objectSchema(t, defs);
    }
    return { $ref: `#/$defs/${t}` };
  }
  // Not a plain interface (the tagged unions of resources Hookline does not serve).
  return { "x-typescript": t };
}

function objectSchema(name, defs) {
  const properties = {};
  const required = [];
  for (const m of members(interfaces.get(name))) {
    properties[m.name] = schema(m.type, defs);
    if (!m.optional) required.push(m.name);
  }
  return { type: "object", properties, required };
}

// The resources of a client: [dotted name, instance], found through its getters.
function resources(root, prefix = "") {
  const found = [];
  const proto = Object.getPrototypeOf(root);
  for (const [key, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
    if (!d.get) continue;
    const value = root[key];
    if (value && typeof value === "object" && "requestCtx" in value) {
      found.push([`${prefix}${key}`, value]);
      found.push(...resources(value, `${prefix}${key}.`));
    }
  }
  return found;
}

// The options interface each method of a class takes, from the class's declaration.
function optionTypes(className) {
  for (const file of readdirSync(join(dist, "api")).filter((f) => f.endsWith(".d.ts"))) {
    const text = read(join(dist, "api", file));
    const m = text.match(new RegExp(`export declare class ${className} \\{`));
    if (!m) continue;
    const body = block(text, m.index + m[0].length);
    const types = new Map();
    for (const sig of body.matchAll(/^\s*(\w+)\(([^)]*)\)/gm)) {
      const options = sig[2].match(/options\?: (\w+)/);
      if (options) types.set(sig[1], options[1]);
    }
    return types;
  }
  return new Map();
}

function operation(name, resource, methodName, options) {
  const code = resource[methodName].toString();
  const request = code.match(/HttpMethod\.(\w+), "([^"]+)"/);
  if (!request) return null;
  const query = [];
  const params = code.match(/setQueryParams\(\{([\s\S]*?)\}\);/);
  const fields = new Map(members(options ? interfaces.get(options) ?? "" : "")
    .map((m) => [m.name, m.type]));
  for (const line of params ? params[1].split(",\n") : []) {
    const m = line.trim().match(/^(\w+): ([\s\S]+)$/);
    if (!m) continue;
    // `options?.x`, `options?.x ?? literal` (compiled to `_a !== void 0 ? _a : literal`),
    // or a bare literal the SDK always sends.
    const prop = m[2].match(/options\.(\w+)/);
    const fallback = m[2].match(/\? _\w+ : (.+)$/);
    const literal = prop ? fallback?.[1] : m[2];
    const type = prop ? fields.get(prop[1]) : typeof JSON.parse(literal);
    query.push({
      name: m[1],
      schema: schema(type ?? "any", {}),
      always: literal === undefined ? null : String(JSON.parse(literal)),
    });
  }
  const body = code.match(/setBody\(\w+\.(\w+)Serializer\._toJsonObject/);
  let bodySchema = null;
  if (body) {
    const defs = {};
    const plain = interfaces.has(body[1]);
    bodySchema = {
      model: body[1],
      schema: plain ? { ...objectSchema(body[1], defs), $defs: defs } : { "x-typescript": body[1] },
    };
  }
  return { sdk: "js", name: `${name}.${methodName}`, method: request[1], path: request[2], query, body: bodySchema };
}

const found = [];
for (const [name, resource] of resources(new Svix("unused", { serverUrl: "http://127.0.0.1:9" }))) {
  const proto = Object.getPrototypeOf(resource);
  const options = optionTypes(proto.constructor.name);
  for (const [methodName, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
    if (methodName === "constructor" || typeof d.value !== "function") continue;
    const op = operation(name, resource, methodName, options.get(methodName));
    if (op) found.push(op);
  }
}
console.log(JSON.stringify(found));

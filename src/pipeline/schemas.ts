import { z } from 'zod';

type JsonObject = Record<string, unknown>;

/**
 * The JSON Schema sent as `response_format`: strict mode wants every property required and
 * `additionalProperties: false` on every object, so both are filled in wherever the pipeline
 * file left them out (optional values are written as nullable types).
 */
export function providerJsonSchema(schema: JsonObject): JsonObject {
  return rewriteObjects(schema, (node) => ({ ...node, additionalProperties: false })) as JsonObject;
}

/**
 * The local validator. Properties are required as the provider was told, but objects stay
 * open (extra keys are stripped, not refused): the local check is never stricter than what the
 * provider was asked for, so a model that adds a field it was not asked for still gives a usable
 * answer.
 */
export function responseValidator(schema: JsonObject): z.ZodType {
  const open = rewriteObjects(schema, (node) => {
    const { additionalProperties: _closed, ...rest } = node;
    return rest;
  });
  return z.fromJSONSchema(open as Parameters<typeof z.fromJSONSchema>[0]);
}

function rewriteObjects(node: unknown, finish: (object: JsonObject) => JsonObject): unknown {
  if (Array.isArray(node)) return node.map((n) => rewriteObjects(n, finish));
  if (node === null || typeof node !== 'object') return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] =
      key === 'properties' && value && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewriteObjects(v, finish)]))
        : rewriteObjects(value, finish);
  }
  const properties = out['properties'];
  if (properties && typeof properties === 'object' && !Array.isArray(properties)) {
    const names = Object.keys(properties);
    const listed = Array.isArray(out['required']) ? (out['required'] as string[]) : [];
    out['required'] = [...listed, ...names.filter((n) => !listed.includes(n))];
    return finish(out);
  }
  return out;
}

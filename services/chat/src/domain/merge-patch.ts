import type { JsonObject } from './json.js'

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** JSON merge patch (RFC 7386): objects merge recursively, `null` removes a key, anything else replaces. */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target }
  for (const [key, value] of Object.entries(patch)) {
    const current = result[key]
    if (value === null) delete result[key]
    else if (isObject(value)) result[key] = mergePatch(isObject(current) ? current : {}, value)
    else result[key] = value
  }
  return result
}

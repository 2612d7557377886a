type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** JSON merge patch (RFC 7386): objects merge recursively, `null` removes a key, anything else replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  const result: Json = { ...target }
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else if (isObject(value)) result[key] = mergePatch(isObject(result[key]) ? (result[key] as Json) : {}, value)
    else result[key] = value
  }
  return result
}

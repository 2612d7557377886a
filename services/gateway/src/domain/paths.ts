/**
 * Whether a request path holds a `.` or `..` segment, literally or percent-encoded (`%2e%2e`, `..%2f`).
 * Such a path could be normalized by something behind the gateway into a route the table never
 * published (`/api/v1/sessions/../../internal/x`), so the gateway refuses it as not found.
 */
export function hasDotSegment(url: string): boolean {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  if (!path.includes('.') && !path.includes('%')) return false
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return true // a malformed escape is refused too
  }
  return decoded.split(/[/\\]/).some((segment) => segment === '.' || segment === '..')
}

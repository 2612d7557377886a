/** The `code` of an error (undici's, Node's, ours), or '' when it has none. */
export const codeOf = (err: unknown): string => (err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '')

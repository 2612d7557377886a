/** Why a message's content is refused, or null when it may be sent. */
export function contentProblem(content: string, maxLength: number): { code: 'EMPTY_MESSAGE' | 'MESSAGE_TOO_LONG'; message: string } | null {
  if (content.trim().length === 0) return { code: 'EMPTY_MESSAGE', message: 'The message is empty: write something first' }
  // UTF-16 length bounds the code point count from above, so the exact count is only needed near the limit.
  if (content.length > maxLength) {
    const length = [...content].length
    if (length > maxLength) {
      return { code: 'MESSAGE_TOO_LONG', message: `The message has ${length} characters; at most ${maxLength} are allowed` }
    }
  }
  return null
}

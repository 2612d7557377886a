import { TITLE_MAX_LENGTH } from '@platform/contracts'
import { InvalidTitleError } from './errors.js'

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** A title as stored: trimmed, 1..200 characters (code points), no control characters. */
export function normalizeTitle(raw: string): string {
  const title = raw.trim()
  if (title.length === 0) throw new InvalidTitleError('The title is blank: give 1 to 200 visible characters')
  if (CONTROL.test(title)) throw new InvalidTitleError('The title contains control characters')
  const length = [...title].length
  if (length > TITLE_MAX_LENGTH) {
    throw new InvalidTitleError(`The title has ${length} characters; at most ${TITLE_MAX_LENGTH} are allowed`)
  }
  return title
}

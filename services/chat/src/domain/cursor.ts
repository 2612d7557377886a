import { InvalidCursorError } from './errors.js'

export interface Position {
  createdAt: Date
  id: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Keyset cursor over (createdAt desc, id desc): stable while rows are added or removed. */
export function encodeCursor(p: Position): string {
  return Buffer.from(`${p.createdAt.toISOString()}|${p.id}`).toString('base64url')
}

export function decodeCursor(cursor: string): Position {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|')
  const createdAt = new Date(iso ?? '')
  if (!id || !UUID.test(id) || Number.isNaN(createdAt.getTime())) throw new InvalidCursorError()
  return { createdAt, id }
}

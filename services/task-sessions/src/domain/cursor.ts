import { InvalidCursorError } from './errors.js'

export interface Position {
  createdAt: Date
  id: bigint
}

/** Keyset cursor over (createdAt asc, id asc): stable while sessions are added or removed. */
export function encodeCursor(p: Position): string {
  return Buffer.from(`${p.createdAt.toISOString()}|${p.id}`).toString('base64url')
}

export function decodeCursor(cursor: string): Position {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|')
  const createdAt = new Date(iso ?? '')
  if (!id || !/^\d{1,19}$/.test(id) || Number.isNaN(createdAt.getTime())) throw new InvalidCursorError()
  return { createdAt, id: BigInt(id) }
}

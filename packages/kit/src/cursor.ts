import createError from '@fastify/error'

export const InvalidCursorError = createError('INVALID_CURSOR', 'The cursor is not one this API returned; start again without it', 400)

/** Where a keyset page ends: the (createdAt, id) of its last row. */
export interface Position<Id extends string | bigint = string> {
  createdAt: Date
  id: Id
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const SERIAL = /^\d{1,19}$/

/** An opaque keyset cursor over (createdAt, id): stable while rows are added or removed. */
export function encodeCursor(p: Position<string | bigint>): string {
  return Buffer.from(`${p.createdAt.toISOString()}|${p.id}`).toString('base64url')
}

function split(cursor: string, idPattern: RegExp): { createdAt: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|')
  const createdAt = new Date(iso ?? '')
  if (!id || !idPattern.test(id) || Number.isNaN(createdAt.getTime())) throw new InvalidCursorError()
  return { createdAt, id }
}

/** Decodes a cursor over rows with uuid ids; 400 INVALID_CURSOR for anything this API did not return. */
export function decodeCursor(cursor: string): Position<string> {
  return split(cursor, UUID)
}

/** Decodes a cursor over rows with bigint (serial) ids. */
export function decodeSerialCursor(cursor: string): Position<bigint> {
  const { createdAt, id } = split(cursor, SERIAL)
  return { createdAt, id: BigInt(id) }
}

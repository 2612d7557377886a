import { defineError } from './errors.js'

export const InvalidCursorError = defineError('INVALID_CURSOR', 'The cursor is not one this API returned; start again without it')

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

export type Order = 'asc' | 'desc'

/** Where a page starts: past a position in (createdAt, id) order, as a Prisma `where` part (empty on the first page). */
export interface After<Id extends string | bigint> {
  OR?: [{ createdAt: { gt: Date } | { lt: Date } }, { createdAt: Date; id: { gt: Id } | { lt: Id } }]
}

export interface Keyset<Id extends string | bigint> {
  where: After<Id>
  orderBy: [{ createdAt: Order }, { id: Order }]
  take: number
}

/** The where, order and take of one keyset page over (createdAt, id); fetch with them, then call `keysetPage`. */
export function keyset(cursor: string | undefined, limit: number, order: Order, ids?: 'uuid'): Keyset<string>
export function keyset(cursor: string | undefined, limit: number, order: Order, ids: 'serial'): Keyset<bigint>
export function keyset(cursor: string | undefined, limit: number, order: Order, ids: 'uuid' | 'serial' = 'uuid'): Keyset<string> | Keyset<bigint> {
  const orderBy: Keyset<string>['orderBy'] = [{ createdAt: order }, { id: order }]
  if (ids === 'serial') return { where: afterPosition(cursor ? decodeSerialCursor(cursor) : null, order), orderBy, take: limit + 1 }
  return { where: afterPosition(cursor ? decodeCursor(cursor) : null, order), orderBy, take: limit + 1 }
}

/** Rows past `after` in (createdAt, id) order: empty on the first page. */
export function afterPosition<Id extends string | bigint>(after: Position<Id> | null, order: Order): After<Id> {
  if (!after) return {}
  const past = <T>(value: T): { gt: T } | { lt: T } => (order === 'asc' ? { gt: value } : { lt: value })
  return { OR: [{ createdAt: past(after.createdAt) }, { createdAt: after.createdAt, id: past(after.id) }] }
}

/** Rows fetched with `keyset(...).take` (one past the page): the page and the cursor of the next one, null on the last. */
export function keysetPage<R extends Position<string | bigint>>(rows: R[], limit: number): { page: R[]; nextCursor: string | null } {
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return { page, nextCursor: rows.length > limit && last ? encodeCursor(last) : null }
}

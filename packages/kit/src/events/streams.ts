import { Streams, type StreamKey } from '@platform/contracts'
import { RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream'

const DUPLICATE_WINDOW_NS = 120 * 1_000_000_000

export function streamNameFor(namespace: string, key: StreamKey): string {
  const base = Streams[key].name
  return namespace ? `${namespace.replace(/[^A-Za-z0-9_-]/g, '_').toUpperCase()}_${base}` : base
}

export function streamSubjects(namespace: string, key: StreamKey): string[] {
  return Streams[key].subjects.map((s) => (namespace ? `${namespace}.${s}` : s))
}

/** Creates the stream when it is missing; two instances racing to create it both succeed. */
export async function ensureStream(jsm: JetStreamManager, namespace: string, key: StreamKey): Promise<string> {
  const name = streamNameFor(namespace, key)
  try {
    await jsm.streams.info(name)
    return name
  } catch {
    // missing: create below
  }
  try {
    await jsm.streams.add({
      name,
      subjects: streamSubjects(namespace, key),
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      duplicate_window: DUPLICATE_WINDOW_NS,
      max_age: 7 * 24 * 3600 * 1_000_000_000
    })
  } catch (err) {
    await jsm.streams.info(name).catch(() => {
      throw err
    })
  }
  return name
}

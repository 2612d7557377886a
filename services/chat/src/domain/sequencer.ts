/**
 * Puts the messages of one chat session back in order on a receiving instance and drops duplicates.
 * Each message carries `seq` (1, 2, 3, ... without gaps in its session). A message arriving early waits
 * in `pending` until the ones before it arrive (live or read back from Postgres); one already delivered
 * (a live echo, a replay overlap) is dropped. Until `init` the position is unknown and everything waits.
 */
export class Sequencer<T extends { seq: number }> {
  /** The last seq delivered in order; -1 while unknown. */
  last = -1
  readonly pending = new Map<number, T>()

  get initialized(): boolean {
    return this.last >= 0
  }

  /** The highest seq waiting, or `last` when nothing waits. */
  get highest(): number {
    let max = this.last
    for (const seq of this.pending.keys()) if (seq > max) max = seq
    return max
  }

  get hasGap(): boolean {
    return this.pending.size > 0
  }

  /** Sets the position (what the first reader saw in Postgres) and returns what may now be delivered. */
  init(last: number): T[] {
    if (this.initialized) return []
    this.last = last
    for (const seq of this.pending.keys()) if (seq <= last) this.pending.delete(seq)
    return this.drain()
  }

  /** Returns the items deliverable now, in order: none, this one, or this one and those it unblocked. */
  accept(item: T): T[] {
    if (this.initialized && item.seq <= this.last) return []
    if (this.pending.has(item.seq)) return []
    if (!this.initialized || item.seq !== this.last + 1) {
      this.pending.set(item.seq, item)
      return []
    }
    this.last = item.seq
    const out = [item]
    return this.drain(out)
  }

  /** Gives up on the missing ones (Postgres does not have them either) and returns everything waiting, in order. */
  skipGap(): T[] {
    const out = [...this.pending.values()].sort((a, b) => a.seq - b.seq)
    this.pending.clear()
    const top = out.at(-1)
    if (top) this.last = top.seq
    return out
  }

  private drain(out: T[] = []): T[] {
    for (;;) {
      const next = this.pending.get(this.last + 1)
      if (!next) return out
      this.pending.delete(next.seq)
      this.last = next.seq
      out.push(next)
    }
  }
}

/** The seqs after < seq ≤ upTo of one chat session. */
export interface SeqRange {
  after: number
  upTo: number
}

/**
 * Per session, one range of seqs covering every seq added: a bound on what to read back (a range may
 * also cover seqs that did not need it; receivers drop duplicates). One entry per session, whatever
 * the number of messages.
 */
export class SeqRanges {
  private ranges = new Map<string, SeqRange>()

  get size(): number {
    return this.ranges.size
  }

  add(chatSessionId: string, seq: number): void {
    this.addRange(chatSessionId, { after: seq - 1, upTo: seq })
  }

  addRange(chatSessionId: string, range: SeqRange): void {
    const r = this.ranges.get(chatSessionId)
    if (!r) {
      this.ranges.set(chatSessionId, { after: range.after, upTo: range.upTo })
    } else {
      if (range.after < r.after) r.after = range.after
      if (range.upTo > r.upTo) r.upTo = range.upTo
    }
  }

  merge(other: SeqRanges): void {
    for (const [id, range] of other.ranges) this.addRange(id, range)
  }

  /** Every range, leaving this empty. */
  take(): Map<string, SeqRange> {
    const out = this.ranges
    this.ranges = new Map()
    return out
  }
}

/** Resolves when `promise` settles or after `ms`, whichever comes first; never rejects. */
export async function waitUntil(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    // Settling is all that is awaited: the caller handles the promise's own outcome.
    promise.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    })
  ])
  clearTimeout(timer)
}

/**
 * Cleanups run in reverse order of registration, every one of them even when some fail: the
 * subset of TC39's `AsyncDisposableStack` a command needs. Node 24 has the global (and `await
 * using`); Node 22, which the CLI still supports, has neither, so this is the same contract in a
 * few lines: `defer` what undoes each step as it succeeds, and `disposeAsync()` in a `finally`.
 */
export class DisposerStack {
  readonly #cleanups: (() => unknown)[] = [];
  #disposed = false;

  /** Registers `fn` to run at disposal; returns nothing, like AsyncDisposableStack#defer. */
  defer(fn: () => unknown): void {
    if (this.#disposed) throw new ReferenceError('this stack is already disposed');
    this.#cleanups.push(fn);
  }

  /** Registers a resource's `close()` (or `[Symbol.asyncDispose]`) and hands the resource back. */
  use<T extends { close(): unknown } | AsyncDisposable>(resource: T): T {
    this.defer(() =>
      Symbol.asyncDispose in resource
        ? (resource as AsyncDisposable)[Symbol.asyncDispose]()
        : (resource as { close(): unknown }).close(),
    );
    return resource;
  }

  /**
   * Runs every cleanup, last registered first. A failure does not stop the others; the first one
   * is rethrown at the end (a cleanup that fails must not hide the error that ended the command,
   * so callers dispose in `finally` and let the body's error win).
   */
  async disposeAsync(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    let failure: { error: unknown } | undefined;
    for (const fn of this.#cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        failure ??= { error };
      }
    }
    this.#cleanups.length = 0;
    if (failure) throw failure.error;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.disposeAsync();
  }
}

/**
 * `await using stack = new DisposerStack()` for the Node versions without the syntax: runs `body`
 * with a fresh stack and disposes it after, whether `body` returned or threw. When both fail, the
 * body's error is the one that surfaces.
 */
export async function withDisposer<T>(body: (stack: DisposerStack) => Promise<T>): Promise<T> {
  const stack = new DisposerStack();
  let result: T;
  try {
    result = await body(stack);
  } catch (e) {
    await stack.disposeAsync().catch(() => {});
    throw e;
  }
  await stack.disposeAsync();
  return result;
}

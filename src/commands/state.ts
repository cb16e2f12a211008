import { type LoadInput, loadStoreSetting } from '../config/index.ts';
import { openState, type SharedState } from '../store/state.ts';
import type { CommandContext } from './context.ts';

/**
 * How commands reach the shared state: state.db in the data directory, or the Redis store named
 * by --store, FLASHCARDS_STORE or the config's `store`. Every command that reads or changes
 * batches, limits or breakers opens it here, so each works the same on both backends.
 */

/** loadSettings' input for a command: the global --store counts as one of its flags. */
export function settingsInput(ctx: CommandContext, flags: Record<string, unknown> = {}): LoadInput {
  return {
    cwd: ctx.cwd,
    env: ctx.env,
    configFile: ctx.configFile,
    flags: ctx.store === undefined ? flags : { ...flags, store: ctx.store },
  };
}

/**
 * Opens the shared state: `create` false for commands that only look (undefined when there is
 * none). `resolved` carries a run's settled `store` setting; without it, the setting is read alone.
 */
export async function openCommandState(
  ctx: CommandContext,
  create: true,
  resolved?: { store: string | undefined },
): Promise<SharedState>;
export async function openCommandState(
  ctx: CommandContext,
  create: boolean,
  resolved?: { store: string | undefined },
): Promise<SharedState | undefined>;
export async function openCommandState(
  ctx: CommandContext,
  create: boolean,
  resolved?: { store: string | undefined },
): Promise<SharedState | undefined> {
  const url = resolved
    ? resolved.store
    : (await loadStoreSetting({ cwd: ctx.cwd, env: ctx.env, configFile: ctx.configFile, flag: ctx.store }))
        ?.url;
  return openState({
    home: ctx.home,
    store: url,
    clock: ctx.clock,
    create,
    password: ctx.env['FLASHCARDS_REDIS_PASSWORD'] || undefined,
  });
}

/** Runs `fn` on the shared state (undefined when a looking command finds none), then closes it. */
export async function withState<T>(
  ctx: CommandContext,
  create: boolean,
  fn: (state: SharedState | undefined) => Promise<T>,
): Promise<T> {
  const state = await openCommandState(ctx, create);
  if (!state) return fn(undefined);
  try {
    return await fn(state);
  } finally {
    await state.close();
  }
}

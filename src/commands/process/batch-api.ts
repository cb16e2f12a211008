import { join } from 'node:path';
import type { RunOutcome } from '../../batch/runner.ts';
import { OPENAI_LIMITS } from '../../batchapi/adapter.ts';
import { runBatchApi } from '../../batchapi/run.ts';
import { nodeTransport } from '../../client/transport.ts';
import type { CommandContext } from '../context.ts';
import { statusLines } from './batch-api-status.ts';
import type { OpenRun } from './open.ts';
import type { ProcessOptions } from './options.ts';
import type { RunPlan } from './plan.ts';

/** The batch through the provider's batch API: one pass (or until done with --wait). */
export async function runViaBatchApi(
  ctx: CommandContext,
  o: ProcessOptions & { batchApi: NonNullable<ProcessOptions['batchApi']> },
  plan: RunPlan,
  run: OpenRun,
): Promise<RunOutcome> {
  const { settings } = plan;
  const { openaiBatchApi } = await import('../../batchapi/openai.ts');
  const adapter = openaiBatchApi({
    baseUrl: settings.baseUrl,
    apiKey: settings.apiKey,
    transport: run.transport ?? nodeTransport(),
    timeoutMs: settings.timeoutMs,
  });
  const show = !o.quiet && !o.json;
  return runBatchApi({
    batch: run.batch,
    queue: run.stores.queue,
    results: run.stores.results,
    submissions: run.state.batchApi,
    adapter,
    pipeline: plan.pipeline,
    job: run.job,
    owner: run.owner,
    clock: ctx.clock,
    rawDir: join(ctx.home, 'batch-api'),
    maxAttempts: settings.retry.maxAttempts,
    limits: {
      maxRequests: Math.min(settings.batchApi.maxRequests, OPENAI_LIMITS.maxRequests),
      maxBytes: Math.min(settings.batchApi.maxBytes, OPENAI_LIMITS.maxBytes),
    },
    fallback: o.batchApi.fallback,
    wait: o.batchApi.wait,
    onStatus: show ? (out) => ctx.io.err(statusLines(out, ctx.clock.now())) : undefined,
  });
}

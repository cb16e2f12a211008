import { readFileSync } from 'node:fs';
import type { DisposerStack } from '../../core/disposer-stack.ts';
import { packageFile } from '../../core/package-root.ts';
import type { RunTelemetry } from '../../telemetry/otel.ts';
import { otelConfig } from '../../telemetry/otel-config.ts';
import type { CommandContext } from '../context.ts';
import type { RunPlan } from './plan.ts';

/**
 * How long the end of a run may wait for its last spans and metrics to be sent: a collector that
 * is down or hangs delays the exit by this much at most, and changes nothing else.
 */
export const TELEMETRY_FLUSH_MS = 3000;

/**
 * The run's OpenTelemetry traces and metrics, when the standard OTEL_* variables ask for them
 * (telemetry/otel-config.ts); undefined, with nothing of the SDK loaded, when they do not. The
 * flush at the end is registered on `stack` (first, so it runs last, after the run's own
 * cleanups), and what could not be delivered is one warning line.
 */
export async function openTelemetry(
  ctx: CommandContext,
  plan: RunPlan,
  stack: DisposerStack,
): Promise<RunTelemetry | undefined> {
  const config = otelConfig(ctx.env);
  if (!config.enabled) return undefined;
  for (const warning of config.warnings) ctx.io.err(`warning: ${warning}\n`);
  const { startRunTelemetry } = await import('../../telemetry/otel.ts');
  const version = (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string })
    .version;
  const telemetry = await startRunTelemetry({
    config,
    clock: ctx.clock,
    startedAt: plan.started,
    write: (text) => ctx.io.err(text),
    version,
  });
  stack.defer(async () => {
    const problem = await telemetry.shutdown(TELEMETRY_FLUSH_MS);
    if (problem) ctx.io.err(`warning: telemetry was not delivered (${problem}); the run is not affected\n`);
  });
  return telemetry;
}

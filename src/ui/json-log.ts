import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type EventSink, levelOf, type RunEvent } from '../core/events.ts';

export interface JsonLog extends EventSink {
  readonly path: string;
  close(): void;
}

/**
 * Appends one JSON object per event to `<logs>/<time>-<pid>.jsonl`. Lines are buffered and written
 * in blocks (a crash loses at most the last block, never a partial line in the middle of the file).
 * The API key never reaches an event, so it can never reach the log.
 */
export function openJsonLog(
  logsDir: string,
  now: () => number,
  runId: string,
  /** Told once when a write fails (a full disk): the run goes on without its log. */
  onWriteError: (e: unknown) => void = () => {},
  /**
   * The trace a record belongs to, when the run exports telemetry: `traceId` and `spanId` join
   * the log to the run's spans (absent without telemetry).
   */
  correlate?: () => { traceId: string; spanId?: string | undefined },
): JsonLog {
  mkdirSync(logsDir, { recursive: true });
  const stamp = new Date(now()).toISOString().replace(/[:.]/g, '-');
  const path = join(logsDir, `${stamp}-${runId}.jsonl`);
  const fd = openSync(path, 'a');
  let buffer: string[] = [];
  let size = 0;
  let failed = false;
  const flush = (): void => {
    if (buffer.length === 0) return;
    const text = buffer.join('');
    buffer = [];
    size = 0;
    if (failed) return;
    try {
      writeSync(fd, text);
    } catch (e) {
      // A log that cannot be written must not stop the run (nor crash it from a timer).
      failed = true;
      onWriteError(e);
    }
  };
  const timer = setInterval(flush, 1000);
  timer.unref();
  return {
    path,
    emit(event: RunEvent) {
      if (failed) return;
      const { type, ...fields } = event;
      // A job is one item in one stage: `<batch>/<item>/<stage>` names it across runs and processes.
      const jobId =
        'item' in event && 'stage' in event ? `${event.batchId}/${event.item}/${event.stage}` : undefined;
      const ids = correlate?.();
      const line = `${JSON.stringify({ ts: new Date(now()).toISOString(), level: levelOf(event), event: type, runId, jobId, ...ids, ...fields })}\n`;
      buffer.push(line);
      size += line.length;
      if (size > 64 * 1024 || event.type === 'run_finished') flush();
    },
    close() {
      clearInterval(timer);
      flush();
      closeSync(fd);
    },
  };
}

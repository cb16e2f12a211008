import type { Submission } from '../../batchapi/submissions.ts';
import { formatDuration } from '../../core/duration.ts';

/** What is out with the provider: one line a submission, with its age and the provider's counts. */
export function statusLines(out: readonly Submission[], nowMs: number): string {
  return out
    .map((s) => {
      const counts = s.counts
        ? `, ${s.counts.completed}/${s.counts.total} answered, ${s.counts.failed} failed`
        : '';
      const where =
        s.remoteId ?? (s.state === 'uploaded' ? `file ${s.fileId ?? '?'} (not accepted yet)` : 'upload');
      const note = s.error && s.state === 'uploaded' ? ` (${s.error})` : '';
      return `  ${s.stage}: ${where} ${s.remoteState ?? s.state}${counts}, out for ${formatDuration(Math.max(0, nowMs - s.createdAt))}${note}\n`;
    })
    .join('');
}

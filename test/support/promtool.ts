import { spawnSync } from 'node:child_process';

/**
 * promtool, to check a metrics file as Prometheus reads it: $PROMTOOL (.ci/run unpacks Debian's
 * prometheus package into a cache directory and sets it), else a promtool on the PATH.
 */
export const promtool: string = process.env['PROMTOOL'] || 'promtool';

const hasPromtool = spawnSync(promtool, ['--version'], { stdio: 'ignore' }).status === 0;

/** Why the promtool tests skip, in one line, when there is no promtool (never silently). */
export const promtoolSkip: string | false = hasPromtool
  ? false
  : 'promtool is not installed (apt-get download prometheus && dpkg-deb -x prometheus_*.deb dir, then PROMTOOL=dir/usr/bin/promtool); CI always runs these';

/** `promtool check metrics` on an exposition text: its exit status and what it said. */
export function checkMetrics(text: string): { status: number | null; output: string } {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

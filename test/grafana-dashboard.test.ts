import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { OTEL_METRICS, type OtelMetric } from '../src/telemetry/metric-names.ts';
import { TEXTFILE_METRIC_NAMES } from '../src/telemetry/textfile.ts';
import { repoRoot } from './support/cli.ts';

/**
 * The Grafana dashboard (docs/grafana-dashboard.json) queries only metrics the project emits: the
 * textfile's (telemetry/textfile.ts) and the OpenTelemetry instruments' (telemetry/metric-names.ts)
 * as a Prometheus with OTLP ingestion names them. A renamed metric fails here, not on a blank panel.
 */

/** Prometheus's unit suffixes for OTLP metrics (otlptranslator): UCUM unit -> name suffix. */
const UNIT_SUFFIXES: Record<string, string> = { s: 'seconds', ms: 'milliseconds', By: 'bytes' };

/**
 * An OpenTelemetry metric's names in Prometheus: dots become underscores; the unit's suffix is
 * added (`{token}`-style annotations add none; a gauge of unit "1" gets `_ratio`); counters end in
 * `_total`; a histogram is its `_bucket`, `_sum` and `_count` series.
 */
export function prometheusNames(m: OtelMetric): string[] {
  let name = m.name.replace(/[^a-zA-Z0-9_:]/g, '_');
  const suffix = m.unit === '1' ? (m.kind === 'gauge' ? 'ratio' : undefined) : UNIT_SUFFIXES[m.unit];
  if (suffix && !name.endsWith(`_${suffix}`)) name += `_${suffix}`;
  switch (m.kind) {
    case 'counter':
      return [`${name}_total`];
    case 'histogram':
      return [`${name}_bucket`, `${name}_sum`, `${name}_count`];
    default:
      return [name];
  }
}

const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression reads: identifiers that are not functions (followed by a
 * parenthesis), keywords, label names (inside `{}` or after by/without) or durations (inside `[]`).
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(') || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

interface Panel {
  title?: string;
  type?: string;
  datasource?: { uid?: string };
  targets?: { expr?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

const dashboard = JSON.parse(readFileSync(join(repoRoot, 'docs', 'grafana-dashboard.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
};
const panels = allPanels(dashboard.panels);
const exprs = panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '' })),
);

describe('Grafana dashboard', () => {
  test('the PromQL reader finds metric names, not functions, labels or durations', () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.95, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket{job="x"}[$__rate_interval])))',
      ),
      ['gen_ai_client_operation_duration_seconds_bucket'],
    );
    assert.deepEqual(metricNames('time() - max(flashcards_last_success_timestamp_seconds)'), [
      'flashcards_last_success_timestamp_seconds',
    ]);
    assert.deepEqual(metricNames('sum(rate(a_total{result="hit"}[5m])) / sum(rate(b_total[5m]))'), [
      'a_total',
      'b_total',
    ]);
  });

  test('OTel names as Prometheus names them: units, _total, _bucket/_sum/_count, _ratio for a unit-1 gauge', () => {
    assert.deepEqual(prometheusNames(OTEL_METRICS.operationDuration), [
      'gen_ai_client_operation_duration_seconds_bucket',
      'gen_ai_client_operation_duration_seconds_sum',
      'gen_ai_client_operation_duration_seconds_count',
    ]);
    assert.deepEqual(prometheusNames(OTEL_METRICS.items), ['flashcards_items_total']);
    assert.deepEqual(prometheusNames(OTEL_METRICS.queuePending), ['flashcards_queue_pending']);
    assert.deepEqual(prometheusNames(OTEL_METRICS.breakerState), ['flashcards_breaker_state_ratio']);
  });

  test('every expr queries only metrics the project emits (textfile or OpenTelemetry)', () => {
    const known = new Set([
      ...TEXTFILE_METRIC_NAMES,
      ...Object.values(OTEL_METRICS).flatMap(prometheusNames),
    ]);
    assert.ok(exprs.length > 0);
    for (const { panel, expr } of exprs) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `panel "${panel}": no metric in ${expr}`);
      for (const name of names)
        assert.ok(known.has(name), `panel "${panel}" queries ${name}, which nothing emits`);
    }
  });

  test('every textfile metric has a panel', () => {
    const used = new Set(exprs.flatMap(({ expr }) => metricNames(expr)));
    for (const name of TEXTFILE_METRIC_NAMES) assert.ok(used.has(name), `no panel shows ${name}`);
  });

  test('every query goes to the Prometheus data source variable', () => {
    const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.deepEqual(variable && { name: variable.name, query: variable.query }, {
      name: 'datasource',
      query: 'prometheus',
    });
    // Grafana's own syntax for the variable, not a JavaScript template.
    const uid = ['$', '{datasource}'].join('');
    for (const p of panels.filter((p) => p.type !== 'row')) {
      assert.equal(p.datasource?.uid, uid, `panel "${p.title}"`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, uid, `panel "${p.title}"`);
    }
  });
});

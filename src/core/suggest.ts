/** "Did you mean" for every place that names a thing the user may have misspelt. */

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/**
 * The closest known name: a case-insensitive match, then edit distance <= 2, then a nested key
 * whose last segment matches (`rpm` -> `limiter.rpm`), then the only name that starts with it.
 */
export function didYouMean(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const exact = candidates.find((c) => c.toLowerCase() === lower);
  if (exact) return exact;
  let best: { name: string; distance: number } | undefined;
  for (const c of candidates) {
    const distance = levenshtein(lower, c.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { name: c, distance };
  }
  if (best) return best.name;
  const last = lower.split('.').at(-1) ?? lower;
  const nested = candidates.find((c) => c.includes('.') && c.toLowerCase().endsWith(`.${last}`));
  if (nested) return nested;
  // A clear abbreviation ("vocab" for vocabulary): one candidate starts with it.
  const starting = lower.length >= 3 ? candidates.filter((c) => c.toLowerCase().startsWith(lower)) : [];
  return starting.length === 1 ? starting[0] : undefined;
}

/** " (did you mean x?)" for the end of a message, or "" when nothing is close. */
export function didYouMeanSuffix(name: string, candidates: readonly string[]): string {
  const guess = didYouMean(name, candidates);
  return guess ? ` (did you mean ${guess}?)` : '';
}

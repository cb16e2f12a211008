/** One figure printed by `npm run bench`. */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

export type Bench = () => Promise<BenchRow[]>;

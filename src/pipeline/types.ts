import type { z } from 'zod';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One input row as a stage sees it. */
export interface StageItem {
  term: string;
  type?: string | undefined;
  position?: string | undefined;
  context: Record<string, string>;
}

export interface StageInput {
  item: StageItem;
  /** Validated results of the earlier stages of the same item, by stage name. */
  previous: Readonly<Record<string, unknown>>;
}

/**
 * A pipeline stage: how to ask (messages) and what to accept (one zod schema that is at once the
 * TypeScript type, the local validator and the JSON Schema the provider is asked to follow).
 */
export interface Stage<T = unknown> {
  readonly name: string;
  readonly schema: z.ZodType<T>;
  readonly jsonSchema: Record<string, unknown>;
  /** What is sent as `response_format`: built once per stage, not per request. */
  readonly responseFormat: {
    type: 'json_schema';
    json_schema: { name: string; strict: true; schema: Record<string, unknown> };
  };
  /** SHA-256 of the stage name and JSON Schema: stands for the response format in cache keys. */
  readonly schemaDigest: string;
  buildMessages(input: StageInput): ChatMessage[];
}

export interface CardFields {
  front: string;
  back: string;
  cardType: string;
  tags: string[];
}

export interface Pipeline {
  readonly name: string;
  /** Changes whenever a prompt or schema changes, so old results are never mixed with new ones. */
  readonly version: string;
  readonly stages: readonly Stage[];
  /** Turns an item's stage results into cards for the output writer. */
  toCards(item: StageItem, results: Readonly<Record<string, unknown>>): CardFields[];
}

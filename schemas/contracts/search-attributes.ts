/** The search attributes the workflows keep current, so the Temporal UI can filter cycles by them. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const LINE = defineSearchAttributeKey('PerennialLine', SearchAttributeType.KEYWORD);
export const PHASE = defineSearchAttributeKey('PerennialPhase', SearchAttributeType.KEYWORD);
export const VERSION = defineSearchAttributeKey('PerennialVersion', SearchAttributeType.INT);
export const VERDICT = defineSearchAttributeKey('PerennialVerdict', SearchAttributeType.KEYWORD);

/** Name -> type, registered on the namespace when the stack starts. */
export const SEARCH_ATTRIBUTES = {
  [LINE.name]: 'KEYWORD',
  [PHASE.name]: 'KEYWORD',
  [VERSION.name]: 'INT',
  [VERDICT.name]: 'KEYWORD',
} as const satisfies Record<string, 'KEYWORD' | 'INT' | 'TEXT' | 'DOUBLE'>;

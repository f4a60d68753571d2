/** Replay selection: which earlier records a cycle rehearses beside its new drop. Pure. */

/**
 * Replay must not rehearse what the new drop changes: a replayed record that states a new probe's prompt
 * with another answer (the old load limit, say) is left out, so the update does not fight itself.
 */
export function withoutSuperseded(docs: string[], probes: { prompt: string; completion: string }[]): string[] {
  if (!probes.length) return docs;
  return docs.filter((doc) => !probes.some((p) => doc.includes(p.prompt) && !doc.includes(p.prompt + p.completion)));
}

/** "a, b,,c" -> ["a", "b", "c"]: how lists are written in flags and environment variables. */
export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** JSON log lines of a process's output, parsed (other lines skipped). */
export function jsonLines(output: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial line
    }
  }
  return lines;
}

export function findLog(output: string, msg: string | RegExp): Record<string, unknown> | undefined {
  return jsonLines(output).find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(String(l.msg))));
}

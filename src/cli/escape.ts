/**
 * Names from a peer, made safe to print: control characters, bidirectional overrides and
 * isolates (U+202A–U+202E, U+2066–U+2069), line and paragraph separators (U+2028, U+2029) and
 * other invisible format characters are shown as `\u{…}` escapes, so a name can neither
 * break a log line nor display as something else (U+202E turns `gpj.exe` around).
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\\]/gu;

export function escapeName(name: string): string {
  return name.replace(UNSAFE, (char) => (char === '\\' ? '\\\\' : `\\u{${char.codePointAt(0)!.toString(16)}}`));
}

/** Commands printed for people to paste into a POSIX shell. */

/** One word as a shell reads it: as is when it is safe, else single-quoted. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line from its words, each quoted as needed. */
export function shellCommand(...words: string[]): string {
  return words.map(shellQuote).join(" ");
}

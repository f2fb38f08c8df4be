/**
 * Cloud Storage's list globs (objects.list `matchGlob`), for the adapters that filter names
 * themselves: `*` is any run of characters but "/", `**` any run including "/" (`a/**` + `/b`
 * also matches `a/b`), `?` one character but "/", `[abc]`, `[a-z]` and `[!abc]` one character of
 * (or not of) a set, `{x,y}` one of the alternatives. Keys hold no glob characters
 * (KEY_PATTERN), so a pattern built from a key prefix needs no escaping.
 */

/** Compiled globs: a service lists with one per run it looks at, so the cache is kept small. */
const cache = new Map<string, RegExp>();
const CACHE_MAX = 256;

/** The pattern as an anchored regular expression; a malformed one throws a TypeError. */
export function globRegExp(glob: string): RegExp {
  const hit = cache.get(glob);
  if (hit) return hit;
  if (typeof glob !== "string" || glob === "") throw new TypeError(`Expected \`matchGlob\` to be a non-empty glob, got ${JSON.stringify(glob)}`);
  let out = "";
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        // "**/" also matches no folder at all.
        if (glob[i + 1] === "/") {
          i++;
          out += "(?:.*/)?";
        } else out += ".*";
      } else out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) throw new TypeError(`Expected \`matchGlob\` to close the "[" at ${i}: ${JSON.stringify(glob)}`);
      let set = glob.slice(i + 1, close);
      const negate = set.startsWith("!") || set.startsWith("^");
      if (negate) set = set.slice(1);
      out += `[${negate ? "^" : ""}${set.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else if (c === "{") {
      braces++;
      out += "(?:";
    } else if (c === "}" && braces > 0) {
      braces--;
      out += ")";
    } else if (c === "," && braces > 0) out += "|";
    else out += c.replace(/[.+^$()|\\/{}]/g, "\\$&");
  }
  if (braces > 0) throw new TypeError(`Expected \`matchGlob\` to close every "{": ${JSON.stringify(glob)}`);
  const re = new RegExp(`^${out}$`);
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(glob, re);
  return re;
}

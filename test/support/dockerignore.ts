/**
 * What `docker build` would send as context and copy into an image, computed without a Docker
 * engine: .dockerignore rules as Docker applies them (patterns cleaned, `*` and `?` within a
 * segment, `**` across segments, a matched directory excludes what is below it, `!` re-includes,
 * the last matching rule wins) and the COPY instructions of a Dockerfile.
 */

export interface IgnoreRule {
  negate: boolean;
  re: RegExp;
}

export function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (let line of text.split("\n")) {
    line = line.trim();
    if (!line || line.startsWith("#")) continue;
    const negate = line.startsWith("!");
    if (negate) line = line.slice(1).trim();
    const clean = line.replace(/^\/+/, "").replace(/\/+$/, "").replace(/\/+/g, "/");
    rules.push({ negate, re: globToRegExp(clean) });
  }
  return rules;
}

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      // "**/" matches zero or more directories; a trailing "**" matches everything below.
      if (glob[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** True when the file is excluded from the build context. */
export function isIgnored(rules: IgnoreRule[], file: string): boolean {
  const parts = file.split("/");
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((c) => rule.re.test(c))) ignored = !rule.negate;
  }
  return ignored;
}

export interface CopyInstruction {
  stage: number;
  from?: string;
  sources: string[];
  dest: string;
}

export function parseCopies(dockerfile: string): CopyInstruction[] {
  const out: CopyInstruction[] = [];
  let stage = -1;
  for (const raw of dockerfile.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    if (/^FROM\s/i.test(line)) stage++;
    const m = /^(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    let rest = m[2]!.trim();
    let from: string | undefined;
    for (;;) {
      const flag = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest);
      if (!flag) break;
      if (flag[1] === "from") from = flag[2];
      rest = rest.slice(flag[0].length);
    }
    const args = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
    out.push({ stage, ...(from ? { from } : {}), sources: args.slice(0, -1), dest: args[args.length - 1]! });
  }
  return out;
}

/** Files of the context that COPY instructions without --from take. */
export function copiedFromContext(copies: CopyInstruction[], context: string[]): Set<string> {
  const out = new Set<string>();
  for (const c of copies) {
    if (c.from) continue;
    for (const src of c.sources) {
      const base = src.replace(/^\.\//, "").replace(/\/+$/, "");
      const re = base === "." ? null : globToRegExp(base);
      for (const f of context) if (!re || re.test(f) || f.startsWith(base + "/")) out.add(f);
    }
  }
  return out;
}

/**
 * The input of a sweep: a JSON array or a JSONL file of `{ id, question }`. Read once, at plan
 * time, and checked whole before anything is planned: a bad line is named with its number, and
 * duplicate ids are refused because the id is the item's key (unique in a run).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { formatZodError } from "../../src/core/zod-format.js";

export const Question = z.strictObject({
  /** The item's key in the run and in its output. Numbers are taken as their decimal string. */
  id: z.union([z.string().trim().min(1, "Expected a non-empty id").max(200), z.number().int().transform(String)]),
  question: z.string().trim().min(3, "Expected a question of at least 3 characters").max(2000),
});
export type Question = z.infer<typeof Question>;

/** Parses questions from `text`; `name` (the file) goes into error messages. */
export function parseQuestions(text: string, name: string): Question[] {
  const trimmed = text.trim();
  let entries: { where: string; value: unknown }[];
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (e) {
      throw new Error(`${name}: not valid JSON: ${(e as Error).message}`);
    }
    entries = (parsed as unknown[]).map((value, i) => ({ where: `entry ${i}`, value }));
  } else {
    entries = [];
    trimmed.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === "") return;
      try {
        entries.push({ where: `line ${i + 1}`, value: JSON.parse(line) });
      } catch {
        throw new Error(`${name} line ${i + 1}: not a JSON object (expected one {"id", "question"} object a line, or a JSON array)`);
      }
    });
  }
  const seen = new Set<string>();
  return entries.map(({ where, value }) => {
    const q = Question.safeParse(value);
    if (!q.success) throw new Error(`${name} ${where}: ${formatZodError(q.error)}`);
    if (seen.has(q.data.id)) throw new Error(`${name} ${where}: duplicate id "${q.data.id}" (ids are item keys and must be unique)`);
    seen.add(q.data.id);
    return q.data;
  });
}

export async function loadQuestions(file: string): Promise<Question[]> {
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    throw new Error(e.code === "ENOENT" ? `questions file ${file} does not exist` : `cannot read questions file ${file}: ${e.message}`);
  });
  return parseQuestions(text, path.basename(file));
}

/**
 * research-sweep: a research agent over an offline corpus. Per question, four durable steps:
 *
 * 1. `plan`   — the model turns the question into keyword sub-queries (`task: plan`);
 * 2. `search` — the sub-queries run against a minisearch (BM25) index of every Markdown file in
 *               the repository's node_modules, cut into passages; rankings are fused;
 * 3. `read`   — the top passages are read back from their files;
 * 4. `answer` — the model answers from the numbered passages, citing them as `[n]` (`task: answer`).
 *
 * Every step is recorded eagerly (`steps: "eager"`): the two model calls are paid for, and the
 * answer must stay paired with the passages it cites, so a resumed item replays all four from the
 * store and calls the model only for what had not finished. Spend is reported to `ctx.usage` when
 * a call is made, never on replay. Every HTTP attempt of a model call goes through the run-wide
 * `model` limit.
 *
 * The model is the deterministic local one unless the environment names another (see
 * src/model/index.ts and README.md here), e.g. for any OpenAI-compatible server:
 *
 *   SHARDRUN_MODEL_PROVIDER=openai OPENAI_API_KEY=sk-… [OPENAI_BASE_URL=…] [SHARDRUN_MODEL=gpt-4o-mini] \
 *     ./bin/shardrun.js run research-sweep --local
 */
import path from "node:path";
import { z } from "zod";
import { ENV } from "../../src/config/env.js";
import { taskShare, type LimitSpec } from "../../src/core/limits.js";
import { defineJob, NonRetriableError, type JobContext } from "../../src/index.js";
import { ChatResult, createModel, usageOf, type CallLimiter, type ChatModel, type ChatRequest } from "../../src/model/index.js";
import { Limiter } from "../../src/worker/limiter.js";
import { defaultRoot } from "../summarize-docs/index.js";
import { loadCorpusIndex, readPassages, type CorpusIndex } from "./corpus.js";
import { answerRequest, citationsOf, parsePlan, planRequest, type Citation } from "./prompts.js";
import { loadQuestions } from "./questions.js";
import { searchPassages } from "./search.js";

/** The run-wide limit on model requests this job declares; args may only lower it (see below). */
export const MODEL_LIMIT = { perSecond: 20, concurrent: 8 } as const satisfies LimitSpec;

/** Characters of one passage given to the model: five of them keep a prompt near 2,000 tokens. */
const PASSAGE_CHARS = 1500;

const lowerOnly = (field: keyof typeof MODEL_LIMIT) =>
  `Expected at most ${MODEL_LIMIT[field]}, the job's declared limits.model.${field}: a run can lower it, not raise it (edit MODEL_LIMIT in jobs/research-sweep/index.ts)`;

export const ResearchSweepArgs = z.object({
  /**
   * A JSON array or JSONL file of `{ id, question }`, relative to the current directory.
   * @default the bundled jobs/research-sweep/questions.json
   */
  questions: z.string().min(1).optional(),
  /** Only the first N questions. @default all */
  limit: z.coerce.number().int().positive().optional(),
  /** Folder of Markdown documents to search. @default the repository's node_modules (resolved by each task) */
  root: z.string().min(1).optional(),
  /** Passages read and given to the model per question. @default 5 */
  passages: z.coerce.number().int().min(1).max(12).default(5),
  /**
   * Model requests per second across the run, at most MODEL_LIMIT.perSecond (20).
   * @default 20
   * @example --arg perSecond=5
   */
  perSecond: z.coerce.number().positive().max(MODEL_LIMIT.perSecond, lowerOnly("perSecond")).optional(),
  /** Model requests in flight across the run, at most MODEL_LIMIT.concurrent (8). @default 8 */
  concurrent: z.coerce.number().int().min(1).max(MODEL_LIMIT.concurrent, lowerOnly("concurrent")).optional(),
});
export type ResearchSweepArgs = z.infer<typeof ResearchSweepArgs>;

export const ResearchItem = z.object({
  id: z.string().min(1),
  question: z.string().min(1),
  /** Set only when the run named a corpus; otherwise each task finds its own node_modules. */
  root: z.string().optional(),
  passages: z.number().int().min(1).max(12).default(5),
  /** A run-level limit below the declared one (items are the only way args reach the tasks). */
  limit: z.object({ perSecond: z.number().positive().optional(), concurrent: z.number().int().min(1).optional() }).optional(),
});
export type ResearchItem = z.infer<typeof ResearchItem>;

const Hit = z.object({ path: z.string(), title: z.string(), heading: z.string(), ordinal: z.number().int().min(0), score: z.number() });
const Source = z.object({ n: z.number().int().min(1), path: z.string(), title: z.string(), heading: z.string(), text: z.string() });

export interface ResearchAnswer {
  id: string;
  question: string;
  queries: string[];
  answer: string;
  citations: Citation[];
  /** Spend of this question's model calls, replayed ones included. */
  usage: { tokens: number; usd: number };
  /** The model that answered, as the provider names it. */
  model: string;
}

/** The answer when the corpus has nothing for the question: no model call is worth paying for. */
export const NO_PASSAGES = "No passage in the corpus matched the question.";

// One model, one index and one extra limiter per task process; items share them.
let model: ChatModel | undefined;
const indexes = new Map<string, Promise<CorpusIndex>>();
let extra: { key: string; limiter: Limiter } | undefined;

function theModel(): ChatModel {
  try {
    return (model ??= createModel());
  } catch (e) {
    // Bad model settings fail every item the same way: retrying cannot help.
    throw new NonRetriableError(`research-sweep: ${(e as Error).message}`, { cause: e });
  }
}

/** The corpus index of `root`, built (or loaded from the temp-folder cache) once per process. */
function corpusIndex(root: string, ctx: JobContext): Promise<CorpusIndex> {
  let pending = indexes.get(root);
  if (!pending) {
    pending = loadCorpusIndex(root, { onCacheError: (message) => ctx.log.warn(message) }).then((c) => {
      ctx.log.info("corpus index ready", { root, documents: c.documents, passages: c.passages, from: c.source, ms: c.ms });
      return c;
    });
    // A failed build is not cached: the item's retry builds again.
    pending.catch(() => indexes.delete(root));
    indexes.set(root, pending);
  }
  return pending;
}

/**
 * The provider counts requests when they arrive, not when a limiter admits them: a request can
 * reach it well after admission (the process's first fetch, a new connection, a busy event loop)
 * while a later one goes straight out, so a window of exactly one second lets extra requests into
 * some second. Measured with four tasks on two busy cores: 4 ms typical, 40 ms at p90, 250 ms at
 * worst (a task's first request).
 */
const DISPATCH_SKEW_MS = 300;

/**
 * A limit lower than the declared one, enforced in this task on top of `ctx.limit`: its share is
 * the run's value over the launch's task count, which never exceeds the value in total (with
 * fewer tasks running at once it is merely stricter than needed), its window padded by
 * DISPATCH_SKEW_MS. Innermost, so that nothing waits between its admission and the request.
 */
function modelLimiter(item: ResearchItem, ctx: JobContext): CallLimiter {
  let inner: Limiter | undefined;
  if (item.limit) {
    const key = JSON.stringify(item.limit);
    const tasks = Math.max(1, Number.parseInt(process.env[ENV.taskCount] ?? "1", 10) || 1);
    if (extra?.key !== key) {
      const share = taskShare(item.limit, tasks);
      extra = { key, limiter: new Limiter({ ...share, windowMs: share.windowMs + DISPATCH_SKEW_MS }) };
    }
    inner = extra.limiter;
  }
  return (fn) => ctx.limit("model", inner ? () => inner.run(fn, ctx.signal) : fn);
}

async function resolveRoot(item: ResearchItem): Promise<string> {
  return item.root ?? (await defaultRoot());
}

/** The bundled questions, found from the package root so that dist/ and jobs/ both find it. */
export async function bundledQuestions(): Promise<string> {
  return path.join(path.dirname(await defaultRoot()), "jobs", "research-sweep", "questions.json");
}

export default defineJob({
  name: "research-sweep",
  description: "A research agent: plans searches, searches the Markdown docs in node_modules, reads passages and answers with citations",
  args: ResearchSweepArgs,
  item: ResearchItem,
  async *source(args) {
    const file = args.questions === undefined ? await bundledQuestions() : path.resolve(args.questions);
    const questions = await loadQuestions(file);
    const limit = {
      ...(args.perSecond !== undefined && args.perSecond < MODEL_LIMIT.perSecond ? { perSecond: args.perSecond } : {}),
      ...(args.concurrent !== undefined && args.concurrent < MODEL_LIMIT.concurrent ? { concurrent: args.concurrent } : {}),
    };
    for (const q of questions.slice(0, args.limit ?? questions.length)) {
      yield {
        ...q,
        ...(args.root === undefined ? {} : { root: path.resolve(args.root) }),
        passages: args.passages,
        ...(Object.keys(limit).length > 0 ? { limit } : {}),
      } satisfies ResearchItem;
    }
  },
  key: (item) => item.id,
  shard: { itemsPerShard: 4 },
  concurrency: 4,
  steps: "eager",
  limits: { model: MODEL_LIMIT },
  // A runaway item (a model that never stops) fails alone instead of eating the run's budget.
  budgets: { item: { tokens: 50_000 } },
  async run(item, ctx): Promise<ResearchAnswer> {
    const llm = theModel();
    const limit = modelLimiter(item, ctx);
    const usage = { tokens: 0, usd: 0 };
    const call = async (step: string, request: ChatRequest): Promise<ChatResult> => {
      let fresh = false;
      const result = await ctx.step(
        step,
        () => {
          fresh = true;
          return llm.complete(request, { signal: ctx.signal, limit, onRetry: (r) => ctx.log.warn("model call retried", { step, ...r }) });
        },
        { schema: ChatResult },
      );
      // Spend counts once, when it is incurred: a replayed step was paid for by an earlier attempt.
      if (fresh) ctx.usage(usageOf(result));
      const spent = usageOf(result);
      usage.tokens += spent.tokens;
      usage.usd = Math.round((usage.usd + spent.usd) * 1e8) / 1e8;
      return result;
    };

    const plan = await call("plan", planRequest(item.question));
    const queries = parsePlan(plan.text, item.question);
    const hits = await ctx.step(
      "search",
      // The question itself is searched too: a plan may drop a short package name ("ms", "zod").
      async () => searchPassages((await corpusIndex(await resolveRoot(item), ctx)).index, [...queries, item.question], { k: item.passages }),
      { schema: z.array(Hit) },
    );
    const sources = await ctx.step(
      "read",
      async () => {
        const read = await readPassages(await resolveRoot(item), hits, PASSAGE_CHARS, ctx.signal);
        if (read.skipped.length > 0) ctx.log.warn("passages changed since they were indexed; skipped", { skipped: read.skipped });
        return read.sources;
      },
      { schema: z.array(Source) },
    );
    let answer = NO_PASSAGES;
    let answeredBy = plan.model;
    if (sources.length > 0) {
      const result = await call("answer", answerRequest(item.question, sources));
      answer = result.text.trim();
      answeredBy = result.model;
      if (result.finishReason !== "stop") ctx.log.warn("answer did not finish cleanly", { finishReason: result.finishReason });
    }
    const { citations, unknown } = citationsOf(answer, sources);
    if (unknown.length > 0) ctx.log.warn("answer cites passages it was not given", { unknown });
    return { id: item.id, question: item.question, queries, answer, citations, usage, model: answeredBy };
  },
});

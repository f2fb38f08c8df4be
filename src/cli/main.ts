/**
 * The `shardrun` command. User mistakes end in one line on stderr and exit 2; only an internal
 * error shows a stack, and only with SHARDRUN_DEBUG=1.
 */
import { ExitCode, errorMessage, isShardrunError } from "../core/errors.js";
import { HELP, MAIN_HELP } from "./help.js";
import type { Io } from "./commands.js";

// Each command's modules load when it runs: `--version` or `help` load none of them.
const commands = () => import("./commands.js");
const COMMANDS: Record<string, (argv: string[], io: Io) => Promise<number>> = {
  run: async (argv, io) => (await commands()).runCommand(argv, io),
  status: async (argv, io) => (await commands()).statusCommand(argv, io),
  runs: async (argv, io) => (await commands()).runsCommand(argv, io),
  output: async (argv, io) => (await commands()).outputCommand(argv, io),
  rerun: async (argv, io) => (await commands()).rerunCommand(argv, io),
  deploy: async (argv, io) => (await import("./deploy.js")).deployCommand(argv, io),
  serve: async (argv, io) => (await import("./serve.js")).serveCommand(argv, io),
  schedules: async (argv, io) => (await import("./schedules.js")).schedulesCommand(argv, io),
  worker: async () => (await import("../worker/main.js")).workerMain(),
};

export async function main(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    const topic = command === "help" ? rest[0] : undefined;
    io.stdout.write(topic && HELP[topic] ? HELP[topic] : MAIN_HELP);
    return ExitCode.ok;
  }
  if (command === "--version") {
    io.stdout.write(`${(await import("../config/paths.js")).packageVersion()}\n`);
    return ExitCode.ok;
  }
  const fn = COMMANDS[command];
  if (!fn) {
    io.stderr.write(`shardrun: unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(", ")} (see shardrun --help)\n`);
    return ExitCode.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout.write(HELP[command] ?? MAIN_HELP);
    return ExitCode.ok;
  }
  try {
    return await fn(rest, io);
  } catch (e) {
    if (isShardrunError(e, "USAGE") || isShardrunError(e, "INVALID_INPUT")) {
      io.stderr.write(`shardrun: ${errorMessage(e)}\n`);
      return ExitCode.usage;
    }
    io.stderr.write(`shardrun: internal error: ${errorMessage(e)}\n`);
    if (process.env.SHARDRUN_DEBUG && e instanceof Error && e.stack) io.stderr.write(e.stack + "\n");
    return ExitCode.internal;
  }
}

// `shardrun output … | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => process.exit(e.code === "EPIPE" ? ExitCode.ok : ExitCode.internal));
const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() });
// Let stdout drain (output can be large and piped) before exiting.
process.stdout.write("", () => process.exit(code));

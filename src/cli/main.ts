/**
 * The `shardrun` command. User mistakes end in one line on stderr and exit 2; only an internal
 * error shows a stack, and only with SHARDRUN_DEBUG=1.
 */
import { CommanderError } from "commander";
import { ExitCode, errorMessage, isShardrunError } from "../core/errors.js";
import { packageVersion } from "../config/paths.js";
import type { Io } from "./io.js";
import { buildProgram } from "./program.js";

/** commander's error as one line that says where to look: `run: unknown option '--bogus' (see …)`. */
function usageLine(e: CommanderError, argv: readonly string[], commands: readonly string[]): string {
  const message = e.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ").trim();
  if (e.code === "commander.unknownCommand") {
    const name = /'([^']*)'/.exec(message)?.[1] ?? argv[0] ?? "";
    return `unknown command "${name}"; commands: ${commands.join(", ")} (see \`shardrun --help\`)`;
  }
  const command = argv.find((a) => commands.includes(a));
  return command ? `${command}: ${message} (see \`shardrun ${command} --help\`)` : `${message} (see \`shardrun --help\`)`;
}

export async function main(argv: string[], io: Io): Promise<number> {
  let code: number = ExitCode.ok;
  const program = buildProgram(io, (c) => (code = c), packageVersion());
  const commands = program.commands.map((c) => c.name());
  if (argv.length === 0) {
    io.stdout.write(program.helpInformation());
    return ExitCode.ok;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return ExitCode.ok; // --help, --version
      if (e.code === "commander.help") return ExitCode.usage; // a command group without its subcommand: help went to stderr
      io.stderr.write(`shardrun: ${usageLine(e, argv, commands)}\n`);
      return ExitCode.usage;
    }
    if (isShardrunError(e, "USAGE") || isShardrunError(e, "INVALID_INPUT")) {
      io.stderr.write(`shardrun: ${errorMessage(e)}\n`);
      return ExitCode.usage;
    }
    if (isShardrunError(e, "DAMAGED") || isShardrunError(e, "STORE_FULL")) {
      // Not a bug of shardrun: the message names the object or the store and what to do.
      io.stderr.write(`shardrun: ${errorMessage(e)}\n`);
      return ExitCode.internal;
    }
    io.stderr.write(`shardrun: internal error: ${errorMessage(e)}\n`);
    if (process.env.SHARDRUN_DEBUG && e instanceof Error && e.stack) io.stderr.write(e.stack + "\n");
    return ExitCode.internal;
  }
}

// `shardrun output … | head` closes the pipe early: that is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => process.exit(e.code === "EPIPE" ? ExitCode.ok : ExitCode.internal));
const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env, ...(process.argv[1] ? { script: process.argv[1] } : {}) });
// Let stdout drain (output can be large and piped) before exiting.
process.stdout.write("", () => process.exit(code));

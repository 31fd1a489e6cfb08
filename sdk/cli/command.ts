// What every kemu subcommand provides, and the argument parsing they share.

import { parseArgs, type ParseArgsConfig } from "node:util";

export interface Command {
  readonly name: string;
  /** One line for `kemu --help`. */
  readonly summary: string;
  /** The full `kemu NAME --help` text. */
  readonly help: string;
  run(argv: string[]): Promise<number>;
}

/** A usage error: printed with a pointer to --help, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** node:util parseArgs, with its errors turned into UsageErrors that name the command. */
export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(cmd: string, argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/s, "");
    throw new UsageError(`${cmd}: ${msg}`);
  }
}

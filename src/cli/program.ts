import { createRequire } from 'node:module';
import { Command, CommanderError, type Option } from 'commander';
import { FerryError } from '../errors.js';
import { OUTCOMES, type ExitCodeTable } from '../exit-codes.js';
import { errorReport, type CommandReport } from '../command-report.js';
import { quietAt, type CommandContext } from './command-context.js';
import { registerAppCommand } from './commands/app.js';
import { registerBundleCommand } from './commands/bundle.js';
import { registerCaCommand } from './commands/ca.js';
import { registerCheckCommand } from './commands/check.js';
import { registerCurrentCommand } from './commands/current.js';
import { registerDeviceCommand } from './commands/device.js';
import { registerExportCommand } from './commands/export.js';
import { registerInstallCommand } from './commands/install.js';
import { registerKeysCommand } from './commands/keys.js';
import { registerRepoCommand } from './commands/repo.js';
import { registerReportsCommand } from './commands/reports.js';
import { registerRunCommand } from './commands/run.js';
import { registerShowCommand } from './commands/show.js';
import { registerSimCommand } from './commands/sim.js';
import { registerStatusCommand } from './commands/status.js';
import { registerTargetCommand } from './commands/target.js';
import { registerVerifyCommand } from './commands/verify.js';
import { addExitCodeSections, leafCommands } from './help.js';
import { checkPathInputs } from './path-inputs.js';
import { emitReport, type Io } from './output.js';
import { logLevelOption } from './shared-options.js';

const { version: VERSION } = createRequire(import.meta.url)('../../../package.json') as { version: string };

/**
 * Builds the command line. Each action only computes a CommandReport; printing it and choosing the exit code
 * happen once, in run(), and only the entry point calls process.exit.
 */
export function buildProgram(
  name: 'ferry' | 'aklite-offline',
  io: Io,
  setReport: (report: CommandReport, json: boolean) => void,
  useExitCodes: (table: ExitCodeTable) => void = () => {},
): Command {
  const program = new Command(name);
  program
    .description(
      name === 'ferry'
        ? 'move signed OSTree updates across an air gap: export bundles on a workstation, install them on devices'
        : 'aktualizr-lite offline compatible commands: check a bundle, install an update from it, run it after the reboot, show the current target',
    )
    .version(VERSION)
    // `target add --version N` is the target version: the program's own --version counts only before a command.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
      // A bad command line is reported as every refusal is, by run(): one line, and JSON with --json.
      outputError: () => {},
    });

  const context: CommandContext = { name, io, setReport, useExitCodes };
  // The device's update commands come first: they are the ones aklite-offline has too. The order is --help's.
  if (name === 'aklite-offline') registerCheckCommand(program, context);
  registerInstallCommand(program, context);
  registerRunCommand(program, context);
  if (name === 'aklite-offline') {
    registerCurrentCommand(program, context);
    // aklite-offline's commands all take its --log-level.
    for (const command of program.commands) command.addOption(logLevelOption());
  }
  if (name === 'ferry') {
    registerStatusCommand(program, context);
    registerRepoCommand(program, context);
    registerTargetCommand(program, context);
    registerAppCommand(program, context);
    registerExportCommand(program, context);
    registerShowCommand(program, context);
    registerVerifyCommand(program, context);
    registerBundleCommand(program, context);
    registerKeysCommand(program, context);
    registerSimCommand(program, context);
    registerCaCommand(program, context);
    registerDeviceCommand(program, context);
    registerReportsCommand(program, context);
    offerJsonEverywhere(program);
  }
  addExitCodeSections(program);
  requireOptionsAfterUnknownOnes(program);
  program.hook('preAction', async (_program, command) => {
    const missing = requiredOptionsOf(command).find(
      (option) => command.getOptionValue(option.attributeName()) === undefined,
    );
    if (missing !== undefined)
      // Named by its long form (`--src-dir <path>`), whether or not it has a short one.
      throw new FerryError(
        'USAGE',
        `required option '${missing.flags.replace(/^-[A-Za-z], /, '')}' not specified (see --help)`,
      );
    await checkPathInputs(command);
  });
  return program;
}

const REQUIRED_OPTIONS = new WeakMap<Command, readonly Option[]>();

/**
 * commander reports a missing required option before an unknown one, so `--srcdir x` would read as "--src-dir not
 * specified". The required options are checked once the unknown ones have been (with their "did you mean"), just
 * before the action runs.
 */
function requireOptionsAfterUnknownOnes(program: Command): void {
  for (const command of leafCommands(program)) {
    const required = command.options.filter((option) => option.mandatory);
    for (const option of required) option.mandatory = false;
    REQUIRED_OPTIONS.set(command, required);
  }
}

/** The options a command cannot run without. */
export function requiredOptionsOf(command: Command): readonly Option[] {
  return REQUIRED_OPTIONS.get(command) ?? [];
}

/** commander's own wording of a bad command line, as one line: `unknown option '--srcdir' (did you mean --src-dir?)`. */
function usageMessage(error: CommanderError): string {
  const text = error.code === 'commander.help' ? 'a command is missing' : error.message.replace(/^error: /, '');
  return `${text.replace(/\s*\n\s*\(Did you mean/g, ' (did you mean')} (see --help)`;
}

/** Every command that does something takes --json: its one result as one JSON object on stdout. */
function offerJsonEverywhere(command: Command): void {
  for (const sub of command.commands) {
    if (sub.commands.length === 0 && !sub.options.some((option) => option.long === '--json'))
      sub.option('--json', 'print the result as one JSON object (the human text goes to stderr)');
    offerJsonEverywhere(sub);
  }
}

/** Parses argv, runs the command, prints the result; returns the exit code. */
export async function run(name: 'ferry' | 'aklite-offline', argv: readonly string[], io: Io): Promise<number> {
  let result: { report: CommandReport; json: boolean } | undefined;
  // The documented table until the device's configuration asks for the other one.
  let table: ExitCodeTable = 'ferry';
  const program = buildProgram(
    name,
    io,
    (report, json) => {
      result = { report, json };
    },
    (asked) => {
      table = asked;
    },
  );
  let quiet = false;
  program.hook('preAction', (_program, command) => {
    quiet = quietAt(command.opts()['logLevel'] as number | undefined);
  });
  const wantsJson = argv.includes('--json');
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0)
        return 0;
      return emitReport(io, name, { outcome: 'USAGE', message: usageMessage(error) }, { json: wantsJson });
    }
    return emitReport(io, name, errorReport(error), { json: wantsJson, table, quiet });
  }
  if (result === undefined) {
    program.outputHelp();
    return OUTCOMES.USAGE.exitCode;
  }
  return emitReport(io, name, result.report, { json: result.json || wantsJson, table, quiet });
}

/**
 * Runs in the test machine, bundled into one file: writes the bootloader env through ferry's own adapter (UbootEnv:
 * fw_setenv; GrubEnv: grub-editenv on a copy renamed over grubenv) again and again, and says on the console when
 * each write starts and when it has returned, so that the power can be cut in the middle of one. Each write sets
 * `ferry_test_write` to its number; nothing else changes, so no boot trial is armed.
 *
 * usage: node torn-env-writer.mjs uboot <fw_env.config> <writes> | grub <grubenv> <writes>
 */
import { GrubEnv, UbootEnv } from '../../src/device/bootloader-env.js';

const WRITE_VARIABLE = 'ferry_test_write';

const [kind, file, writes] = process.argv.slice(2);
if ((kind !== 'uboot' && kind !== 'grub') || file === undefined || !/^\d+$/.test(writes ?? '')) {
  console.error('usage: torn-env-writer uboot|grub <fw_env.config|grubenv> <writes>');
  process.exit(2);
}
const env = kind === 'grub' ? new GrubEnv(file) : new UbootEnv(file);
for (let write = 1; write <= Number(writes); write++) {
  console.log(`ENV-WRITE-START ${write}`);
  await env.update({ [WRITE_VARIABLE]: String(write) });
  console.log(`ENV-WRITE-DONE ${write}`);
}

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';

const schema = JSON.parse(
  readFileSync(new URL('../../../schemas/status.schema.json', import.meta.url), 'utf8'),
) as object;
const validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);

/** Asserts that `ferry status --json` output matches schemas/status.schema.json. */
export function assertStatusSchema(output: unknown): void {
  const valid = validate(output);
  assert.ok(
    valid,
    `status --json does not match schemas/status.schema.json: ${JSON.stringify(validate.errors, null, 1)}`,
  );
}

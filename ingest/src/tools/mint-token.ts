/**
 * Mints a development token from the stack's local key:
 *   npm run mint-token -- --sub voter-1 [--admin] [--ttl 3600] [--key .stack/secrets/dev-jwt-private.pem]
 * Prints the JWT on stdout. iss/aud default to JWT_ISSUER/JWT_AUDIENCE or votestream-dev/votestream.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { mintToken } from './tokens-dev.ts';

const { values } = parseArgs({
  options: {
    sub: { type: 'string' },
    admin: { type: 'boolean', default: false },
    ttl: { type: 'string', default: '3600' },
    key: { type: 'string', default: process.env.JWT_PRIVATE_KEY_FILE ?? '.stack/secrets/dev-jwt-private.pem' },
    iss: { type: 'string', default: process.env.JWT_ISSUER ?? 'votestream-dev' },
    aud: { type: 'string', default: process.env.JWT_AUDIENCE ?? 'votestream' },
  },
});
if (!values.sub) {
  process.stderr.write('usage: npm run mint-token -- --sub <voterId> [--admin] [--ttl seconds]\n');
  process.exit(2);
}
const ttlS = Number(values.ttl);
if (!Number.isInteger(ttlS) || ttlS <= 0) {
  process.stderr.write('--ttl must be a positive integer (seconds)\n');
  process.exit(2);
}
const token = await mintToken({
  privateKeyPem: readFileSync(values.key, 'utf8'),
  sub: values.sub,
  admin: values.admin,
  ttlS,
  issuer: values.iss,
  audience: values.aud,
});
process.stdout.write(`${token}\n`);

// Unit tests of the connection settings in loadCommonConfig (Kafka TLS/SASL, CQL TLS/auth) and of what
// createKafka / createCqlClient turn them into. Pure: files in a temp dir, no services.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import cassandra from 'cassandra-driver';
import {
  ConfigError,
  cqlClientOptions,
  createLogger,
  kafkaClientConfig,
  loadCommonConfig,
  readSecret,
  secretPath,
} from '../../src/index.ts';

const pem = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
let dir = '';
const file = (name: string) => join(dir, name);

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vs-config-'));
  await writeFile(file('ca.crt'), pem);
  await writeFile(file('not-a-cert'), 'hello\n');
  await writeFile(file('empty'), '  \n');
  await writeFile(file('kafka.password'), 's3cret\n');
  await writeFile(file('cql.password'), 'cql-pass\n');
  await writeFile(file('kafka-sasl.password'), 'from-dir\n');
});
test.after.always(() => rm(dir, { recursive: true, force: true }));

const logger = createLogger('test', 'silent');

test('defaults are the local stack: plaintext, no authentication, single-node Redis', (t) => {
  const c = loadCommonConfig('svc', {});
  t.deepEqual(c.kafkaSecurity, { ssl: false });
  t.deepEqual(c.cqlSecurity, { tls: false });
  t.false(c.redisCluster);
  t.is(c.redisPassword, undefined);
  t.is(c.redisTlsCaPem, undefined);
  const k = kafkaClientConfig({ clientId: 'x', brokers: c.kafkaBrokers, security: c.kafkaSecurity, logger });
  t.is(k.ssl, undefined);
  t.is(k.sasl, undefined);
  const q = cqlClientOptions({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'dc', security: c.cqlSecurity });
  t.is(q.sslOptions, undefined);
  t.is(q.authProvider, undefined);
});

test('bad Kafka settings give a ConfigError naming the variable', (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ KAFKA_SSL: 'yes' }, /KAFKA_SSL/],
    [{ KAFKA_SSL_CA_FILE: file('ca.crt') }, /KAFKA_SSL_CA_FILE/],
    [{ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: file('missing.crt') }, /KAFKA_SSL_CA_FILE/],
    [{ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: file('not-a-cert') }, /KAFKA_SSL_CA_FILE/],
    [{ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: file('empty') }, /KAFKA_SSL_CA_FILE/],
    [{ KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'plain' }, /KAFKA_SASL_MECHANISM/],
    [{ KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'scram-sha-512' }, /KAFKA_SASL_USERNAME/],
    [
      { KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'u' },
      /KAFKA_SASL_PASSWORD_FILE/,
    ],
    [
      {
        KAFKA_SSL: 'true',
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD_FILE: file('missing'),
      },
      /KAFKA_SASL_PASSWORD_FILE/,
    ],
    [
      {
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD_FILE: file('kafka.password'),
      },
      /KAFKA_SSL/,
    ],
    [{ KAFKA_SASL_USERNAME: 'u' }, /KAFKA_SASL_USERNAME/],
    [{ KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'aws-msk-iam' }, /AWS_REGION/],
    [{ KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'aws-msk-iam', AWS_REGION: 'Mars' }, /AWS_REGION/],
    [{ KAFKA_SASL_MECHANISM: 'aws-msk-iam', AWS_REGION: 'us-east-1' }, /KAFKA_SSL/],
    [
      { KAFKA_SSL: 'true', KAFKA_SASL_MECHANISM: 'aws-msk-iam', AWS_REGION: 'us-east-1', KAFKA_SASL_USERNAME: 'u' },
      /KAFKA_SASL_USERNAME/,
    ],
  ];
  for (const [env, name] of bad) {
    const err = t.throws(() => loadCommonConfig('svc', env), { instanceOf: ConfigError }, JSON.stringify(env));
    t.regex(err?.message ?? '', name, JSON.stringify(env));
  }
});

test('secrets are files in SECRETS_DIR under fixed names; a relative <NAME>_FILE is taken inside it', (t) => {
  const c = loadCommonConfig('svc', {
    SECRETS_DIR: dir,
    KAFKA_SSL: 'true',
    KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KAFKA_SASL_USERNAME: 'votestream',
    CQL_TLS: 'true',
    CQL_USERNAME: 'votestream',
    REDIS_PASSWORD_FILE: 'kafka.password',
  });
  t.deepEqual(c.kafkaSecurity.sasl, { mechanism: 'scram-sha-512', username: 'votestream', password: 'from-dir' });
  t.deepEqual(c.cqlSecurity.auth, { username: 'votestream', password: 'cql-pass' });
  t.is(c.redisPassword, 's3cret');
  t.is(secretPath({ SECRETS_DIR: dir }, 'X_FILE', 'x.key'), join(dir, 'x.key'));
  t.is(secretPath({ SECRETS_DIR: dir, X_FILE: '/etc/x.key' }, 'X_FILE', 'x.key'), '/etc/x.key');
});

test('a secret missing from SECRETS_DIR is a ConfigError naming the variable and the path', (t) => {
  const err = t.throws(() => readSecret({ SECRETS_DIR: dir }, 'ALTCHA_HMAC_KEY_FILE', 'altcha-hmac.key'), {
    instanceOf: ConfigError,
  });
  t.is(err?.message.startsWith(`ALTCHA_HMAC_KEY_FILE=${join(dir, 'altcha-hmac.key')} cannot be read: ENOENT`), true);
  const empty = t.throws(() => readSecret({ SECRETS_DIR: dir }, 'X_FILE', 'empty'), { instanceOf: ConfigError });
  t.is(empty?.message, `X_FILE=${join(dir, 'empty')} is empty`);
});

test('KAFKA_SSL with a CA file and SCRAM-SHA-512 become KafkaJS ssl and sasl options', (t) => {
  const c = loadCommonConfig('svc', {
    KAFKA_SSL: 'true',
    KAFKA_SSL_CA_FILE: file('ca.crt'),
    KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KAFKA_SASL_USERNAME: 'votestream',
    KAFKA_SASL_PASSWORD_FILE: file('kafka.password'),
  });
  t.deepEqual(c.kafkaSecurity, {
    ssl: true,
    caPem: pem,
    sasl: { mechanism: 'scram-sha-512', username: 'votestream', password: 's3cret' },
  });
  const k = kafkaClientConfig({ clientId: 'x', brokers: ['b:9096'], security: c.kafkaSecurity, logger });
  t.deepEqual(k.ssl, { ca: [pem] });
  t.deepEqual(k.sasl, { mechanism: 'scram-sha-512', username: 'votestream', password: 's3cret' });
  // TLS without a CA file trusts Node's bundle (MSK's certificates chain to a public CA).
  const plainTls = loadCommonConfig('svc', { KAFKA_SSL: 'true' });
  t.is(kafkaClientConfig({ clientId: 'x', brokers: ['b'], security: plainTls.kafkaSecurity, logger }).ssl, true);
});

test('aws-msk-iam becomes SASL/OAUTHBEARER with a SigV4 kafka-cluster:Connect token, reused until near expiry', async (t) => {
  const c = loadCommonConfig('svc', {
    KAFKA_SSL: 'true',
    KAFKA_SASL_MECHANISM: 'aws-msk-iam',
    AWS_REGION: 'eu-west-1',
  });
  t.deepEqual(c.kafkaSecurity, { ssl: true, sasl: { mechanism: 'aws-msk-iam', region: 'eu-west-1' } });
  const k = kafkaClientConfig({ clientId: 'x', brokers: ['b:9098'], security: c.kafkaSecurity, logger });
  t.is(k.ssl, true);
  t.is(k.sasl?.mechanism, 'oauthbearer');
  const sasl = k.sasl as { oauthBearerProvider: () => Promise<{ value: string }> };
  // The signer takes credentials from the default chain; static ones in the environment sign locally (no network).
  process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  const first = await sasl.oauthBearerProvider();
  const url = new URL(Buffer.from(first.value, 'base64url').toString('utf8'));
  t.is(url.host, 'kafka.eu-west-1.amazonaws.com');
  t.is(url.searchParams.get('Action'), 'kafka-cluster:Connect');
  t.is(url.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
  t.regex(
    url.searchParams.get('X-Amz-Credential') ?? '',
    /^AKIDEXAMPLE\/\d{8}\/eu-west-1\/kafka-cluster\/aws4_request$/,
  );
  const [second, third] = await Promise.all([sasl.oauthBearerProvider(), sasl.oauthBearerProvider()]);
  t.is(second.value, first.value);
  t.is(third.value, first.value);
});

test('bad CQL settings give a ConfigError naming the variable', (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ CQL_TLS: 'on' }, /CQL_TLS/],
    [{ CQL_TLS_CA_FILE: file('ca.crt') }, /CQL_TLS_CA_FILE/],
    [{ CQL_TLS: 'true', CQL_TLS_CA_FILE: file('missing') }, /CQL_TLS_CA_FILE/],
    [{ CQL_TLS: 'true', CQL_TLS_CA_FILE: file('not-a-cert') }, /CQL_TLS_CA_FILE/],
    [{ CQL_TLS: 'true', CQL_USERNAME: 'votestream' }, /CQL_PASSWORD_FILE/],
    [{ CQL_TLS: 'true', CQL_PASSWORD_FILE: file('cql.password') }, /CQL_USERNAME/],
    [{ CQL_TLS: 'true', CQL_USERNAME: 'votestream', CQL_PASSWORD_FILE: file('missing') }, /CQL_PASSWORD_FILE/],
    [{ CQL_TLS: 'true', CQL_USERNAME: 'votestream', CQL_PASSWORD_FILE: file('empty') }, /CQL_PASSWORD_FILE/],
    [{ CQL_USERNAME: 'votestream', CQL_PASSWORD_FILE: file('cql.password') }, /CQL_TLS/],
  ];
  for (const [env, name] of bad) {
    const err = t.throws(() => loadCommonConfig('svc', env), { instanceOf: ConfigError }, JSON.stringify(env));
    t.regex(err?.message ?? '', name, JSON.stringify(env));
  }
});

test('CQL_TLS with a CA file and a password become the driver sslOptions and a PlainTextAuthProvider', (t) => {
  const c = loadCommonConfig('svc', {
    CQL_TLS: 'true',
    CQL_TLS_CA_FILE: file('ca.crt'),
    CQL_USERNAME: 'votestream',
    CQL_PASSWORD_FILE: file('cql.password'),
  });
  t.deepEqual(c.cqlSecurity, { tls: true, caPem: pem, auth: { username: 'votestream', password: 'cql-pass' } });
  const q = cqlClientOptions({
    contactPoints: ['10.0.0.10:9042'],
    localDataCenter: 'us-east-1',
    security: c.cqlSecurity,
  });
  t.deepEqual(q.sslOptions, { rejectUnauthorized: true, ca: [pem] });
  t.true(q.authProvider instanceof cassandra.auth.PlainTextAuthProvider);
  const auth = q.authProvider?.newAuthenticator('10.0.0.10:9042', 'org.apache.cassandra.auth.PasswordAuthenticator');
  // SASL PLAIN initial response: \0username\0password.
  let initial: Buffer | undefined;
  auth?.initialResponse((_err: Error | null, buf: Buffer) => {
    initial = buf;
  });
  t.is(initial?.toString('utf8'), '\0votestream\0cql-pass');
  const tlsOnly = cqlClientOptions({
    contactPoints: ['h:9042'],
    localDataCenter: 'dc',
    security: loadCommonConfig('svc', { CQL_TLS: 'true' }).cqlSecurity,
  });
  t.deepEqual(tlsOnly.sslOptions, { rejectUnauthorized: true });
  t.is(tlsOnly.authProvider, undefined);
});

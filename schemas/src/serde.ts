// Avro serde in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.
//
// Hot path: `encoder(name)` returns a synchronous function over a precompiled avsc type with the schema id header
// baked in; `decoder(name)` returns a function whose only async step is the first sight of a writer schema id
// (fetched from the registry once, resolved against the reader schema once, cached). Malformed bytes never crash a
// consumer with a TypeError from deep inside avsc: they throw AvroDecodeError naming the record, the schema id and
// what was wrong. A registry that cannot be reached is NOT a data fault: it surfaces as SchemaRegistryUnavailableError
// so the caller retries instead of dead-lettering a good record.
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import type { RecordName, RecordTypes } from '../generated/types.ts';
import { expandedSchemas, recordFullNames, recordNames } from '../generated/types.ts';
import type { AvroComplexSchemaJson } from './contracts.ts';
import { schemaText } from './contracts.ts';
import { compatibilityPolicy, subjectFor } from './policy.ts';

/** Wire format header: magic byte + 4-byte schema id. */
export const wireHeaderBytes = 5;
export const wireMagicByte = 0;
/** Distinct writer schema ids one decoder caches. A real deployment sees a handful; beyond this something is wrong. */
export const writerSchemasPerDecoderMax = 256;
/** Largest record the encoder writes (bytes, header included). Votes are < 1 KiB; a tally with many windows more. */
export const encodedRecordBytesMax = 1024 * 1024;
const encodeScratchBytesInitial = 16 * 1024;

/** The bytes are not a valid record of the expected type. Not retryable: route the record to a dead-letter path. */
export class AvroDecodeError extends Error {
  override readonly name = 'AvroDecodeError';
  constructor(
    message: string,
    readonly schemaId: number | null = null,
  ) {
    super(message);
  }
}

/** A value handed to an encoder does not match the schema (a programming error at the producer). */
export class AvroEncodeError extends Error {
  override readonly name = 'AvroEncodeError';
}

/** The registry could not be reached or answered an unexpected error. Retryable. */
export class SchemaRegistryUnavailableError extends Error {
  override readonly name = 'SchemaRegistryUnavailableError';
}

export interface AvroSerdeOptions {
  /** Confluent-compatible API base, e.g. http://127.0.0.1:8081/apis/ccompat/v7 */
  registryUrl: string;
  /** Prepended to every subject (record-name strategy). Tests use a unique prefix; production uses ''. */
  subjectPrefix?: string;
  /**
   * true (default, dev and tests): register the writer schema if the registry does not know it yet, setting the
   * subject's compatibility first. false (production): only look it up; `npm run schemas:register` in CI registers.
   */
  autoRegister?: boolean;
  /** Records to prepare writers for at start-up. Default: all. */
  records?: readonly RecordName[];
  /**
   * The schema this process writes and reads each record with. Default: the working copy (generated). A consumer
   * pinned to an older version (or a test playing one) passes it here; the TypeScript types then no longer describe
   * the values exactly, which is the caller's business.
   */
  schemas?: Partial<Record<RecordName, AvroComplexSchemaJson>>;
  /** Registry request timeout; the client retries on its own up to `retries` times. */
  registryTimeoutMs?: number;
  registryRetries?: number;
}

export interface EncoderOptions {
  /**
   * Validate every value against the schema before writing (default true). avsc's writer does not check types, so
   * an invalid value would otherwise be written as garbage another service fails on later.
   */
  validate?: boolean;
}

export interface AvroSerde {
  /** Writer schema id of each prepared record in the registry. */
  readonly schemaIds: Readonly<Partial<Record<RecordName, number>>>;
  /** Synchronous encoder: value -> Confluent wire-format Buffer (a fresh buffer the caller owns). */
  encoder<N extends RecordName>(name: N, options?: EncoderOptions): (value: RecordTypes[N]) => Buffer;
  /** Decoder: wire-format Buffer -> value in the current reader schema, whatever (compatible) writer wrote it. */
  decoder<N extends RecordName>(name: N): (buf: Buffer) => Promise<RecordTypes[N]>;
}

/**
 * avsc options used everywhere (serde, check, tests): no logical type implementations, so longs stay numbers.
 * A function, not a shared object: avsc stores its type-name registry in the options object it is given.
 */
export function avscOptions(): Partial<avro.ForSchemaOptions> {
  return { wrapUnions: 'auto' };
}

export function parseSchema(schema: AvroComplexSchemaJson | string): avro.Type {
  return avro.Type.forSchema(typeof schema === 'string' ? JSON.parse(schema) : schema, avscOptions());
}

/** avsc's resolver class is not exported by name from its typings. */
type Resolver = ReturnType<avro.Type['createResolver']>;

interface WriterEntry {
  readonly type: avro.Type;
  /** null: the writer schema is the reader schema, no resolution needed. */
  readonly resolver: Resolver | null;
}

export async function createAvroSerde(options: AvroSerdeOptions): Promise<AvroSerde> {
  const subjectPrefix = options.subjectPrefix ?? '';
  const autoRegister = options.autoRegister ?? true;
  const records = options.records ?? recordNames;
  const registry = new SchemaRegistry({
    host: options.registryUrl,
    clientId: 'votestream-schemas',
    retry: { retries: options.registryRetries ?? 3, maxRetryTimeInSecs: 5 },
  });
  const timeoutMs = options.registryTimeoutMs ?? 10_000;

  const schemaOf = (name: RecordName): AvroComplexSchemaJson => options.schemas?.[name] ?? expandedSchemas[name];
  const readerTypes = new Map<RecordName, avro.Type>();
  const readerType = (name: RecordName): avro.Type => {
    let t = readerTypes.get(name);
    if (!t) {
      t = parseSchema(schemaOf(name));
      readerTypes.set(name, t);
    }
    return t;
  };

  const schemaIds: Partial<Record<RecordName, number>> = {};
  for (const name of records) {
    schemaIds[name] = await prepareWriter(registry, options.registryUrl, {
      subject: subjectFor(recordFullNames[name], subjectPrefix),
      text: schemaText(schemaOf(name)),
      autoRegister,
      timeoutMs,
    });
  }

  // Schema ids are global in the registry, so one fetched writer type serves every decoder.
  const writerTypes = new Map<number, Promise<avro.Type>>();
  const fetchWriterType = (id: number): Promise<avro.Type> => {
    let p = writerTypes.get(id);
    if (!p) {
      p = fetchSchemaById(registry, id, timeoutMs);
      writerTypes.set(id, p);
      // A failed fetch must not poison the cache: the next record retries.
      p.catch(() => writerTypes.delete(id));
    }
    return p;
  };

  return {
    schemaIds,
    encoder<N extends RecordName>(name: N, encoderOptions?: EncoderOptions): (value: RecordTypes[N]) => Buffer {
      const id = schemaIds[name];
      if (id === undefined) throw new Error(`createAvroSerde: ${name} was not in options.records, no writer schema id`);
      return makeEncoder<RecordTypes[N]>(readerType(name), id, recordFullNames[name], encoderOptions?.validate ?? true);
    },
    decoder<N extends RecordName>(name: N): (buf: Buffer) => Promise<RecordTypes[N]> {
      const reader = readerType(name);
      const fullName = recordFullNames[name];
      const writers = new Map<number, WriterEntry>();
      const slow = async (buf: Buffer, id: number): Promise<RecordTypes[N]> => {
        let writer: avro.Type;
        try {
          writer = await fetchWriterType(id);
        } catch (err) {
          if (err instanceof AvroDecodeError) throw new AvroDecodeError(`${fullName}: ${err.message}`, id);
          throw err;
        }
        let entry = writers.get(id);
        if (!entry) {
          if (writers.size >= writerSchemasPerDecoderMax) {
            throw new AvroDecodeError(
              `${fullName}: more than writerSchemasPerDecoderMax=${writerSchemasPerDecoderMax} distinct writer schema ids seen; refusing schema id ${id}`,
              id,
            );
          }
          let resolver: Resolver | null = null;
          if (!writer.equals(reader)) {
            try {
              resolver = reader.createResolver(writer);
            } catch (err) {
              throw new AvroDecodeError(
                `${fullName}: schema id ${id} (${writer.name ?? writer.typeName}) cannot be read as ${fullName}: ${(err as Error).message}`,
                id,
              );
            }
          }
          entry = { type: writer, resolver };
          writers.set(id, entry);
        }
        return decodeBody(buf, id, reader, entry, fullName) as RecordTypes[N];
      };
      return (buf: Buffer): Promise<RecordTypes[N]> => {
        try {
          const id = readHeader(buf, fullName);
          const entry = writers.get(id);
          if (entry) return Promise.resolve(decodeBody(buf, id, reader, entry, fullName) as RecordTypes[N]);
          return slow(buf, id);
        } catch (err) {
          return Promise.reject(err);
        }
      };
    },
  };
}

function readHeader(buf: Buffer, fullName: string): number {
  if (!Buffer.isBuffer(buf)) throw new AvroDecodeError(`${fullName}: expected a Buffer, got ${typeof buf}`);
  if (buf.length < wireHeaderBytes) {
    throw new AvroDecodeError(
      `${fullName}: truncated payload: ${buf.length} bytes, shorter than the ${wireHeaderBytes}-byte wire header (magic byte + schema id)`,
    );
  }
  const magic = buf[0]!;
  if (magic !== wireMagicByte) {
    throw new AvroDecodeError(
      `${fullName}: wrong magic byte 0x${magic.toString(16).padStart(2, '0')} (expected 0x00): not Confluent wire-format Avro`,
    );
  }
  return buf.readUInt32BE(1);
}

function decodeBody(buf: Buffer, id: number, reader: avro.Type, entry: WriterEntry, fullName: string): unknown {
  let result: { value: unknown; offset: number };
  try {
    result =
      entry.resolver === null
        ? reader.decode(buf, wireHeaderBytes)
        : reader.decode(buf, wireHeaderBytes, entry.resolver);
  } catch (err) {
    // avsc throws on e.g. an out-of-range union or enum index, an invalid length, or bytes that are not UTF-8.
    throw new AvroDecodeError(`${fullName}: malformed Avro body (schema id ${id}): ${(err as Error).message}`, id);
  }
  if (result.offset < 0) {
    throw new AvroDecodeError(
      `${fullName}: truncated payload: the ${buf.length - wireHeaderBytes}-byte body ends before the record does (schema id ${id})`,
      id,
    );
  }
  if (result.offset !== buf.length) {
    throw new AvroDecodeError(
      `${fullName}: ${buf.length - result.offset} trailing bytes after the record (schema id ${id}): wrong schema id or corrupted payload`,
      id,
    );
  }
  return result.value;
}

function makeEncoder<T>(type: avro.Type, schemaId: number, fullName: string, validate: boolean): (value: T) => Buffer {
  let scratch = Buffer.allocUnsafe(encodeScratchBytesInitial);
  const writeHeader = (b: Buffer) => {
    b[0] = wireMagicByte;
    b.writeUInt32BE(schemaId, 1);
  };
  writeHeader(scratch);
  return (value: T): Buffer => {
    if (validate) {
      const problems: string[] = [];
      const ok = type.isValid(value, {
        errorHook: (path, v) => {
          if (problems.length < 5) problems.push(`${path.join('.') || '(root)'} = ${describe(v)}`);
        },
      });
      if (!ok) throw new AvroEncodeError(`${fullName}: value does not match the schema: ${problems.join('; ')}`);
    }
    let end = type.encode(value, scratch, wireHeaderBytes);
    while (end < 0) {
      // encode returns -(bytes missing); grow to fit, within the bound.
      const needed = scratch.length - end;
      if (needed > encodedRecordBytesMax) {
        throw new AvroEncodeError(
          `${fullName}: record needs ${needed} bytes, more than encodedRecordBytesMax=${encodedRecordBytesMax}`,
        );
      }
      scratch = Buffer.allocUnsafe(Math.min(encodedRecordBytesMax, Math.max(needed, scratch.length * 2)));
      writeHeader(scratch);
      end = type.encode(value, scratch, wireHeaderBytes);
    }
    const out = Buffer.allocUnsafe(end);
    scratch.copy(out, 0, 0, end);
    return out;
  };
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

interface RegistryHttpError {
  status?: number;
  message?: string;
}

function isNotFound(err: unknown): boolean {
  const e = err as RegistryHttpError;
  return e?.status === 404 || /\b404\b|40401|40402|40403|not found/i.test(String(e?.message ?? ''));
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SchemaRegistryUnavailableError(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function fetchSchemaById(registry: SchemaRegistry, id: number, timeoutMs: number): Promise<avro.Type> {
  let fetched: unknown;
  try {
    fetched = await withTimeout(registry.getSchema(id), timeoutMs, `schema registry: get schema id ${id}`);
  } catch (err) {
    if (err instanceof SchemaRegistryUnavailableError) throw err;
    if (isNotFound(err)) throw new AvroDecodeError(`unknown schema id ${id}: the registry has no such schema`, id);
    throw new SchemaRegistryUnavailableError(`schema registry: get schema id ${id}: ${(err as Error).message}`);
  }
  // Re-parse with our own avsc options so every type in this process decodes alike.
  const schema = (fetched as { schema?: () => unknown }).schema?.();
  if (schema === undefined) throw new AvroDecodeError(`schema id ${id} is not an Avro schema`, id);
  try {
    return avro.Type.forSchema(schema as avro.Schema, avscOptions());
  } catch (err) {
    throw new AvroDecodeError(`schema id ${id} is not a valid Avro schema: ${(err as Error).message}`, id);
  }
}

interface PrepareWriterArgs {
  subject: string;
  text: string;
  autoRegister: boolean;
  timeoutMs: number;
}

async function prepareWriter(
  registry: SchemaRegistry,
  registryUrl: string,
  { subject, text, autoRegister, timeoutMs }: PrepareWriterArgs,
): Promise<number> {
  const schema = { type: 'AVRO' as never, schema: text };
  try {
    return await withTimeout(
      registry.getRegistryIdBySchema(subject, schema),
      timeoutMs,
      `schema registry: look up ${subject}`,
    );
  } catch (err) {
    if (err instanceof SchemaRegistryUnavailableError) throw err;
    // The client turns the registry's 404 (unknown subject, or schema not under it) into a bare
    // ConfluentSchemaRegistryError (the class is not exported, so match its name); anything else is an outage.
    if ((err as Error)?.name !== 'ConfluentSchemaRegistryError' && !isNotFound(err)) {
      throw new SchemaRegistryUnavailableError(`schema registry: look up ${subject}: ${(err as Error).message}`);
    }
    if (!autoRegister) {
      throw new Error(
        `writer schema for ${subject} is not registered and autoRegister is false: run \`npm run schemas:register\` first`,
      );
    }
  }
  await ensureSubjectCompatibility(registryUrl, subject, timeoutMs);
  try {
    const { id } = await withTimeout(
      registry.register(schema, { subject, compatibility: compatibilityPolicy as never }),
      timeoutMs,
      `schema registry: register ${subject}`,
    );
    return id;
  } catch (err) {
    if (err instanceof SchemaRegistryUnavailableError) throw err;
    throw new Error(
      `schema registry refused the writer schema for ${subject}: ${(err as Error).message}. Run \`npm run schemas:check\` to see which change breaks ${compatibilityPolicy}.`,
    );
  }
}

/** PUT /config/{subject}: set the project policy on a subject (idempotent). */
export async function ensureSubjectCompatibility(
  registryUrl: string,
  subject: string,
  timeoutMs = 10_000,
): Promise<void> {
  const url = `${registryUrl.replace(/\/$/, '')}/config/${encodeURIComponent(subject)}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: compatibilityPolicy }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new SchemaRegistryUnavailableError(`schema registry: PUT ${url}: ${(err as Error).message}`);
  }
  if (!res.ok) {
    throw new SchemaRegistryUnavailableError(`schema registry: PUT ${url}: HTTP ${res.status} ${await res.text()}`);
  }
}

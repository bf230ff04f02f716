// An AvroSerde without a registry, for unit tests of processors: the same Confluent wire format (magic byte,
// 4-byte schema id, Avro body) over the working copy's schemas, with fixed local schema ids. It is a fake of the
// registry only; the Avro encoding is avsc's, as in production.
import {
  AvroDecodeError,
  type AvroSerde,
  expandedSchemas,
  parseSchema,
  type RecordName,
  type RecordTypes,
  recordNames,
  wireHeaderBytes,
  wireMagicByte,
} from '@votestream/schemas';

export function createLocalSerde(): AvroSerde {
  const types = new Map<RecordName, { id: number; type: ReturnType<typeof parseSchema> }>();
  recordNames.forEach((name, i) => {
    types.set(name, { id: i + 1, type: parseSchema(expandedSchemas[name]) });
  });
  const entry = (name: RecordName) => {
    const e = types.get(name);
    if (!e) throw new Error(`no schema for ${name}`);
    return e;
  };
  const schemaIds: Partial<Record<RecordName, number>> = {};
  for (const [name, { id }] of types) schemaIds[name] = id;
  return {
    schemaIds,
    encoder<N extends RecordName>(name: N, options?: { validate?: boolean }) {
      const { id, type } = entry(name);
      return (value: RecordTypes[N]): Buffer => {
        if (options?.validate !== false && !type.isValid(value)) throw new Error(`invalid ${name}`);
        const body = type.toBuffer(value);
        const header = Buffer.alloc(wireHeaderBytes);
        header.writeUInt8(wireMagicByte, 0);
        header.writeUInt32BE(id, 1);
        return Buffer.concat([header, body]);
      };
    },
    decoder<N extends RecordName>(name: N) {
      const { id, type } = entry(name);
      return async (buf: Buffer): Promise<RecordTypes[N]> => {
        if (buf.length < wireHeaderBytes || buf.readUInt8(0) !== wireMagicByte)
          throw new AvroDecodeError(`${name}: not in the wire format`);
        const got = buf.readUInt32BE(1);
        if (got !== id) throw new AvroDecodeError(`${name}: unknown schema id ${got}`, got);
        try {
          return type.fromBuffer(buf.subarray(wireHeaderBytes)) as RecordTypes[N];
        } catch (err) {
          throw new AvroDecodeError(`${name}: ${(err as Error).message}`, got);
        }
      };
    },
  };
}

// @votestream/schemas: the Avro contracts between ingest, stream and projections.
export type * from '../generated/types.ts';
export { expandedSchemas, recordFullNames, recordNames } from '../generated/types.ts';
export type { AvroComplexSchemaJson, AvroFieldJson, AvroSchemaJson } from './contracts.ts';
export { idPattern, idSyntax, isId } from './ids.ts';
export type { CompatibilityPolicy } from './policy.ts';
export { compatibilityPolicy, subjectFor } from './policy.ts';
export type { AvroSerde, AvroSerdeOptions, EncoderOptions } from './serde.ts';
export {
  AvroDecodeError,
  AvroEncodeError,
  avscOptions,
  createAvroSerde,
  encodedRecordBytesMax,
  ensureSubjectCompatibility,
  parseSchema,
  SchemaRegistryUnavailableError,
  wireHeaderBytes,
  wireMagicByte,
  writerSchemasPerDecoderMax,
} from './serde.ts';

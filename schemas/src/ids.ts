/**
 * The syntax of poll and option ids (the Avro docs of PollDefinition say the same): lowercase letters, digits
 * and '-', 1 to 64 characters. Ingest validates with it, the OpenAPI `Id` schema is generated from it, the live
 * page checks its path with it. The ids appear unescaped in Kafka keys, Redis keys and MQTT topics, which is why
 * the alphabet is this small.
 */
export const idSyntax = '[a-z0-9-]{1,64}';

export const idPattern = new RegExp(`^${idSyntax}$`);

export function isId(value: string): boolean {
  return idPattern.test(value);
}

import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { stack, uniqueId } from '@votestream/devstack';
import test from 'ava';

const v1 = {
  type: 'record',
  name: 'Probe',
  namespace: 'io.votestream.stacktest',
  fields: [{ name: 'pollId', type: 'string' }],
};

async function ccompat(path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${stack.schemaRegistryUrl}${path}`, {
    ...init,
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json', ...init.headers },
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('the schema registry registers an Avro schema, serves it by id, and refuses an incompatible change', async (t) => {
  const registry = new SchemaRegistry({ host: stack.schemaRegistryUrl });
  const subject = uniqueId('io.votestream.stacktest.Probe-');

  const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) }, { subject });
  const fetched = await ccompat(`/schemas/ids/${id}`);
  t.is(fetched.status, 200);
  t.deepEqual(JSON.parse((fetched.body as { schema: string }).schema), v1);
  const encoded = await registry.encode(id, { pollId: 'final-2026' });
  t.is(encoded[0], 0, 'Confluent wire format starts with magic byte 0');
  t.deepEqual({ ...(await registry.decode(encoded)) }, { pollId: 'final-2026' });

  const level = await ccompat(`/config/${encodeURIComponent(subject)}`, {
    method: 'PUT',
    body: JSON.stringify({ compatibility: 'FULL_TRANSITIVE' }),
  });
  t.is(level.status, 200);

  // Adding a field without a default breaks backward compatibility: a new reader cannot read old records.
  const breaking = { ...v1, fields: [...v1.fields, { name: 'optionId', type: 'string' }] };
  const refused = await ccompat(`/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST',
    body: JSON.stringify({ schema: JSON.stringify(breaking) }),
  });
  t.is(refused.status, 409, JSON.stringify(refused.body));

  // The same field with a default is compatible both ways and is accepted as version 2.
  const compatible = { ...v1, fields: [...v1.fields, { name: 'optionId', type: 'string', default: '' }] };
  const accepted = await ccompat(`/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST',
    body: JSON.stringify({ schema: JSON.stringify(compatible) }),
  });
  t.is(accepted.status, 200, JSON.stringify(accepted.body));
  const versions = await ccompat(`/subjects/${encodeURIComponent(subject)}/versions`);
  t.deepEqual(versions.body, [1, 2]);
});

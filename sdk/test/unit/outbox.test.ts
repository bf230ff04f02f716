import test from 'ava';
import { asyncStorageAdapter, createMemoryStorage, Outbox, type OutboxEntry } from '../../src/outbox.ts';

const entry = (pollId: string, createdAtMs = 1000, optionId = 'a'): OutboxEntry => ({
  pollId,
  optionId,
  idempotencyKey: `key-${pollId}-${optionId}`,
  createdAtMs,
  voter: 'voter-1',
  altcha: null,
  sent: false,
});

test('an entry written by one outbox is read back by a new one over the same storage (an app restart)', async (t) => {
  const storage = createMemoryStorage();
  await new Outbox(storage, 'ns', undefined, () => 2000).add(entry('p1'));
  const reopened = new Outbox(storage, 'ns', undefined, () => 2000);
  t.deepEqual(await reopened.get('p1'), entry('p1'));
  t.deepEqual((await reopened.list()).entries, [entry('p1')]);
});

test('one entry per poll: a second add for the same poll returns the existing entry untouched', async (t) => {
  const outbox = new Outbox(createMemoryStorage(), 'ns', undefined, () => 2000);
  t.deepEqual(await outbox.add(entry('p1')), { added: true });
  t.deepEqual(await outbox.add(entry('p1', 1500, 'b')), { added: false, existing: entry('p1') });
});

test('concurrent adds for different polls are all kept (serialised read-modify-write)', async (t) => {
  const outbox = new Outbox(createMemoryStorage(), 'ns', undefined, () => 2000);
  await Promise.all(Array.from({ length: 20 }, (_, i) => outbox.add(entry(`p${i}`))));
  t.is((await outbox.list()).entries.length, 20);
});

test('the outbox refuses entries beyond outboxEntriesMax', async (t) => {
  const outbox = new Outbox(createMemoryStorage(), 'ns', { outboxEntriesMax: 2, outboxEntryTtlMs: 10_000 }, () => 2000);
  await outbox.add(entry('p1'));
  await outbox.add(entry('p2'));
  t.is(await outbox.add(entry('p3')), 'full');
});

test('entries older than outboxEntryTtlMs are dropped and reported once', async (t) => {
  let now = 2000;
  const outbox = new Outbox(createMemoryStorage(), 'ns', { outboxEntriesMax: 10, outboxEntryTtlMs: 5000 }, () => now);
  await outbox.add(entry('old', 1000));
  await outbox.add(entry('new', 4000));
  now = 7000;
  t.deepEqual(await outbox.list(), { entries: [entry('new', 4000)], expired: [entry('old', 1000)] });
  t.deepEqual(await outbox.list(), { entries: [entry('new', 4000)], expired: [] });
});

test('remove only removes the entry with the same key; update keeps the key and refuses to change it', async (t) => {
  const outbox = new Outbox(createMemoryStorage(), 'ns', undefined, () => 2000);
  await outbox.add(entry('p1'));
  await outbox.remove('p1', 'another-key');
  t.not(await outbox.get('p1'), null);
  await outbox.update({ ...entry('p1'), altcha: 'solved', sent: true });
  t.like(await outbox.get('p1'), { altcha: 'solved', sent: true });
  await t.throwsAsync(outbox.update({ ...entry('p1'), idempotencyKey: 'changed' }), { name: 'SdkInvariantError' });
  await outbox.remove('p1', entry('p1').idempotencyKey);
  t.is(await outbox.get('p1'), null);
});

test('a corrupt document does not wedge the outbox; valid entries survive', async (t) => {
  const storage = createMemoryStorage();
  await storage.setItem('ns:outbox:v1', JSON.stringify({ v: 1, entries: [entry('p1'), { pollId: 3 }, 'x'] }));
  t.deepEqual((await new Outbox(storage, 'ns', undefined, () => 2000).list()).entries, [entry('p1')]);
  await storage.setItem('ns:outbox:v1', '{not json');
  t.deepEqual((await new Outbox(storage, 'ns', undefined, () => 2000).list()).entries, []);
});

test('the AsyncStorage-style adapter works over a synchronous localStorage-like store', async (t) => {
  const data: Record<string, string> = {};
  const localStorageLike = {
    getItem: (k: string) => data[k] ?? null,
    setItem: (k: string, v: string) => {
      data[k] = v;
    },
    removeItem: (k: string) => {
      delete data[k];
    },
  };
  const outbox = new Outbox(asyncStorageAdapter(localStorageLike), 'app', undefined, () => 2000);
  await outbox.add(entry('p1'));
  t.deepEqual(JSON.parse(data['app:outbox:v1']!).entries, [entry('p1')]);
  await outbox.remove('p1', entry('p1').idempotencyKey);
  t.false('app:outbox:v1' in data);
});

/**
 * Live totals over MQTT (WebSockets in browsers and apps): `votestream/polls/{pollId}/totals`, retained, QoS 1,
 * JSON `{ pollId, version, totals, total, asOf, final }` published by projections.
 *
 * One MQTT connection per voter client, shared by every subscribed poll (a phone keeps one socket). Versions
 * strictly increase per topic, so anything not newer than the last delivered version is dropped: a retained
 * message re-delivered after a reconnect, or a stale one overtaken in flight. Reconnection is ours, not mqtt.js's
 * fixed-period timer: exponential back-off with full jitter, so a broker restart seen by a million viewers does not
 * bring them back in lock-step. After each reconnect every topic is subscribed again, which also re-delivers the
 * retained latest totals that were published while we were away.
 */

import type { IClientOptions, MqttClient } from 'mqtt';
import { backoffDelayMs, type RetryPolicy } from './backoff.ts';
import { describeError, isRecord } from './outcomes.ts';

export interface TotalsUpdate {
  pollId: string;
  /** Strictly increasing per poll; an update is only delivered if newer than the last one delivered. */
  version: number;
  totals: Record<string, number>;
  total: number;
  /** When projections computed it (as published: epoch ms or an ISO-8601 string). */
  asOf: number | string;
  /** True once the poll is closed and the tally will not change. */
  final: boolean;
}

export type ResultsStatus = 'connecting' | 'connected' | 'reconnecting';

export interface SubscribeResultsOptions {
  onStatus?: (status: ResultsStatus, detail?: string) => void;
}

export interface ResultsSubscription {
  /** Stops this subscription; the connection closes when no subscription is left. */
  close(): Promise<void>;
}

export interface ResultsHubOptions {
  mqttUrl: string;
  /** Reconnect back-off (only retryDelayMsBase and retryDelayMsMax are used). */
  reconnect?: Pick<RetryPolicy, 'retryDelayMsBase' | 'retryDelayMsMax'>;
  /** MQTT connect timeout. */
  connectTimeoutMs?: number;
  /** Messages larger than this are dropped unread (a totals message for 100 options is ~3 KB). */
  messageBytesMax?: number;
  /** Overrides the dynamic `import('mqtt')` (a bundler without dynamic imports, or a test). */
  mqttConnect?: (url: string, options: IClientOptions) => MqttClient;
  random?: () => number;
}

export const totalsTopic = (pollId: string): string => `votestream/polls/${pollId}/totals`;

/**
 * mqtt.js's browser build (`mqtt/dist/mqtt.esm.js`, what browsers and bundlers load) has only a default export;
 * Node's entry has named ones. Found by the browser example test (tests/system/sdk-package.test.ts).
 */
async function loadMqttConnect(): Promise<(url: string, options: IClientOptions) => MqttClient> {
  const mod = (await import('mqtt')) as { connect?: typeof import('mqtt').connect; default?: { connect?: unknown } };
  const connect = mod.connect ?? mod.default?.connect;
  if (typeof connect !== 'function') throw new TypeError('the mqtt module exports no connect function');
  return connect as (url: string, options: IClientOptions) => MqttClient;
}

type Listener = { onUpdate: (update: TotalsUpdate) => void; onStatus: SubscribeResultsOptions['onStatus'] };

interface TopicState {
  pollId: string;
  listeners: Set<Listener>;
  /** Last update delivered on this topic; replayed at once to a listener that joins later. */
  last: TotalsUpdate | null;
}

/** Validates one payload; returns null (and the message is dropped) when it is not a well-formed totals message. */
export function parseTotals(payload: Uint8Array, expectedPollId: string, messageBytesMax: number): TotalsUpdate | null {
  if (payload.byteLength > messageBytesMax) return null;
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
  if (!isRecord(v)) return null;
  const { pollId, version, totals, total, asOf, final } = v;
  if (pollId !== expectedPollId) return null;
  if (typeof version !== 'number' || !Number.isFinite(version)) return null;
  if (!isRecord(totals)) return null;
  const counts: Record<string, number> = {};
  for (const [option, count] of Object.entries(totals)) {
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) return null;
    counts[option] = count;
  }
  if (typeof total !== 'number' || !Number.isInteger(total) || total < 0) return null;
  if (typeof asOf !== 'number' && typeof asOf !== 'string') return null;
  if (typeof final !== 'boolean') return null;
  return { pollId, version, totals: counts, total, asOf, final };
}

/** Poll ids become an MQTT topic level: no wildcards, no level separator. */
export function assertTopicSafePollId(pollId: string): void {
  if (pollId === '' || /[/+#]/.test(pollId) || pollId.includes('\0') || pollId.length > 256) {
    throw new TypeError(`pollId ${JSON.stringify(pollId)} cannot be used in an MQTT topic`);
  }
}

export class ResultsHub {
  private client: MqttClient | null = null;
  private connecting: Promise<MqttClient> | null = null;
  private readonly topics = new Map<string, TopicState>();
  private reconnectRetry = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private closing = false;
  private readonly reconnect: Pick<RetryPolicy, 'retryDelayMsBase' | 'retryDelayMsMax'>;
  private readonly messageBytesMax: number;

  constructor(private readonly options: ResultsHubOptions) {
    this.reconnect = options.reconnect ?? { retryDelayMsBase: 500, retryDelayMsMax: 30_000 };
    this.messageBytesMax = options.messageBytesMax ?? 256 * 1024;
  }

  async subscribe(
    pollId: string,
    onUpdate: (update: TotalsUpdate) => void,
    options: SubscribeResultsOptions = {},
  ): Promise<ResultsSubscription> {
    assertTopicSafePollId(pollId);
    const topic = totalsTopic(pollId);
    const listener: Listener = { onUpdate, onStatus: options.onStatus };
    let state = this.topics.get(topic);
    const first = state === undefined;
    if (!state) {
      state = { pollId, listeners: new Set(), last: null };
      this.topics.set(topic, state);
    }
    state.listeners.add(listener);
    const last = state.last;
    if (last) queueMicrotask(() => onUpdate(last));
    this.closing = false;
    const client = await this.ensureClient();
    if (first && client.connected) {
      // Not connected yet: the 'connect' handler subscribes every topic, this one included.
      client.subscribe(topic, { qos: 1 }, (err) => {
        if (err) listener.onStatus?.('reconnecting', `subscribe failed: ${err.message}`);
      });
    }
    let closed = false;
    return {
      close: async () => {
        if (closed) return;
        closed = true;
        const s = this.topics.get(topic);
        if (!s) return;
        s.listeners.delete(listener);
        if (s.listeners.size > 0) return;
        this.topics.delete(topic);
        if (this.topics.size === 0) {
          await this.shutdown();
        } else if (this.client?.connected) {
          await this.client.unsubscribeAsync(topic).catch(() => undefined);
        }
      },
    };
  }

  /** Closes the connection and forgets every subscription. */
  async shutdown(): Promise<void> {
    this.closing = true;
    this.topics.clear();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const client = this.client ?? (this.connecting ? await this.connecting.catch(() => null) : null);
    this.client = null;
    this.connecting = null;
    if (client) await client.endAsync(true).catch(() => undefined);
  }

  private emitStatus(status: ResultsStatus, detail?: string): void {
    for (const state of this.topics.values()) for (const l of state.listeners) l.onStatus?.(status, detail);
  }

  private ensureClient(): Promise<MqttClient> {
    if (this.client) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.createClient().then((c) => {
        this.client = c;
        return c;
      });
      this.connecting.catch(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  private async createClient(): Promise<MqttClient> {
    const connect = this.options.mqttConnect ?? (await loadMqttConnect());
    this.emitStatus('connecting');
    const client = connect(this.options.mqttUrl, {
      protocolVersion: 4, // MQTT 3.1.1: every broker speaks it (Mosquitto here, EMQX/HiveMQ in production).
      clean: true, // nothing to resume: retained totals are the state, and we resubscribe on each connect
      reconnectPeriod: 0, // reconnection is ours (jittered exponential back-off), see scheduleReconnect
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      keepalive: 30,
      resubscribe: false,
    });
    client.on('connect', () => {
      this.reconnectRetry = 0;
      this.emitStatus('connected');
      const topics = [...this.topics.keys()];
      if (topics.length > 0) {
        client.subscribe(topics, { qos: 1 }, (err) => {
          if (err) this.emitStatus('reconnecting', `subscribe failed: ${err.message}`);
        });
      }
    });
    client.on('message', (topic, payload) => {
      const state = this.topics.get(topic);
      if (!state) return;
      const update = parseTotals(payload, state.pollId, this.messageBytesMax);
      if (update === null) return;
      if (state.last !== null && update.version <= state.last.version) return; // stale or repeated: drop
      state.last = update;
      for (const l of state.listeners) l.onUpdate(update);
    });
    client.on('close', () => this.scheduleReconnect(client));
    client.on('error', (err) => this.emitStatus('reconnecting', describeError(err)));
    return client;
  }

  private scheduleReconnect(client: MqttClient): void {
    if (this.closing || this.reconnectTimer !== null || this.client !== client) return;
    const delay = backoffDelayMs(
      this.reconnectRetry++,
      { ...this.reconnect, attemptsMax: Number.POSITIVE_INFINITY, retryBudgetMs: Number.POSITIVE_INFINITY },
      this.options.random,
    );
    this.emitStatus('reconnecting', `next attempt in ${delay} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closing && this.client === client) client.reconnect();
    }, delay);
  }
}

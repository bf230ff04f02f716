import { hostname } from 'node:os';
import type { Logger } from '@votestream/runtime';
import mqtt, { type MqttClient } from 'mqtt';

/**
 * The projections service's MQTT connection (MQTT 5, authenticated as the only publisher). mqtt.js retries
 * every `reconnectPeriod`; we double it on every failed attempt up to `reconnectDelayMsMax` and reset it once
 * connected, so a restarting broker is not hammered. Only standard MQTT 5 features, so the broker can change.
 */
export function connectLiveMqtt(opts: {
  url: string;
  username: string;
  password: string;
  logger: Logger;
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
}): MqttClient {
  const { logger } = opts;
  const client = mqtt.connect(opts.url, {
    protocolVersion: 5,
    clientId: `projections-${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    username: opts.username,
    password: opts.password,
    clean: true,
    keepalive: 15,
    connectTimeout: 5_000,
    reconnectPeriod: opts.reconnectDelayMsMin,
    // We never publish while disconnected (the publisher waits for `connect`), so nothing queues offline.
    queueQoSZero: false,
  });
  client.on('connect', () => {
    client.options.reconnectPeriod = opts.reconnectDelayMsMin;
    logger.info({ url: opts.url }, 'MQTT connected');
  });
  client.on('reconnect', () => {
    client.options.reconnectPeriod = Math.min(
      (client.options.reconnectPeriod ?? opts.reconnectDelayMsMin) * 2,
      opts.reconnectDelayMsMax,
    );
  });
  client.on('offline', () => logger.warn({ url: opts.url }, 'MQTT offline, reconnecting with back-off'));
  client.on('error', (err) => logger.warn({ err }, 'MQTT error'));
  return client;
}

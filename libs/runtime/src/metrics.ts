import type { Consumer } from 'kafkajs';
import { collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client';

/** One Prometheus registry per process, with Node's default metrics; services add their own. */
export function createMetricsRegistry(serviceName: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service: serviceName });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The metric called `name` in `registry`, made by `make` the first time: the tasks, consumers and processors of one
 * process share one metric (prom-client refuses a second registration of a name).
 */
export function sharedMetric<T extends Metric>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * Exports a consumer's lag, in records, per partition it consumes: `<name>{...labels, topic, partition}`, set
 * from KafkaJS's END_BATCH_PROCESS event (high watermark minus the batch's last offset minus one, so 0 once a
 * batch reached the end). The gauge (created once per registry, label names = keys of `labels` + topic,
 * partition) forgets this consumer's partitions at every group join, so a partition that moved to another
 * process is reported by its new owner only. A partition that fetched nothing since the join is absent (KafkaJS
 * emits the event only for non-empty batches): alert rules read absence as "no new records", not as lag.
 */
export function exportConsumerLag(
  consumer: Consumer,
  registry: Registry,
  opts: { name: string; help: string; labels: Record<string, string> },
): void {
  const labelNames = [...Object.keys(opts.labels), 'topic', 'partition'];
  const gauge = sharedMetric(
    registry,
    opts.name,
    () => new Gauge({ name: opts.name, help: opts.help, labelNames, registers: [registry] }),
  );
  const reported = new Map<string, Record<string, string>>();
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const labels = { ...opts.labels, topic: payload.topic, partition: String(payload.partition) };
    gauge.set(labels, Number(payload.offsetLag));
    reported.set(`${payload.topic}/${payload.partition}`, labels);
  });
  consumer.on(consumer.events.GROUP_JOIN, () => {
    for (const labels of reported.values()) gauge.remove(labels);
    reported.clear();
  });
}
